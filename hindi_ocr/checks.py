"""Flag checks that run before anything slow: a wrong flag should cost a second and say what to do, not fail after
minutes of loading; no run writes over another unasked; the base checkpoint must be a GOT-OCR2 one. The checks of an
--adapter folder (safetensors only, and fitting the base) are in :mod:`hindi_ocr.adapters`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoints import resume_point
from .hub_resume import fetch_last_checkpoint, wants_hub
from .precision import check_bf16, fp16_problem

if TYPE_CHECKING:
    from transformers import GotOcr2Config

logger = logging.getLogger(__name__)



def positive_int(text: str) -> int:
    """argparse type for counts such as --batch_size."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def unit_interval(text: str) -> float:
    """argparse type for a probability such as --review_below: a number from 0 to 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(text)
    return value


def check_training_run(model_args, data_args, lora_args, training_args) -> None:
    """The local train.py checks, quickest first, before any network access or model loading; sets
    ``training_args.resume_from_checkpoint`` to a complete folder. A Hub model id is checked when the model loads,
    after the data (a wrong --data_dir should not wait for the Hub's retries). The one exception is
    ``--resume_from_checkpoint hub``: its checkpoint is downloaded here, after the data folder check, because the
    output_dir and LoRA-shape checks need it."""
    check_data_dir(data_args.data_dir)
    check_max_steps(training_args.max_steps, training_args.num_train_epochs)
    check_demo_space(training_args)
    if model_args.dtype == "bfloat16":
        check_bf16("--dtype bfloat16", use_cpu=training_args.use_cpu)
    problem = fp16_problem(training_args.fp16, model_args.dtype,
                           trains_full_weights=not lora_args.use_lora or lora_args.train_projector)
    if problem:
        raise SystemExit(problem)
    if wants_hub(training_args.resume_from_checkpoint):  # one process per machine downloads, the others reuse it
        with training_args.main_process_first(local=training_args.save_on_each_node, desc="last-checkpoint"):
            training_args.resume_from_checkpoint = fetch_last_checkpoint(
                training_args.hub_model_id, training_args.output_dir, token=training_args.hub_token,
                revision=training_args.hub_revision)
    training_args.resume_from_checkpoint = resume_point(training_args.resume_from_checkpoint,
                                                        training_args.output_dir)
    if training_args.resume_from_checkpoint:
        check_resume_flags(training_args.resume_from_checkpoint, model_args, lora_args)
        check_resume_format(training_args.resume_from_checkpoint, data_args)
    check_output_dir(training_args.output_dir, training_args.overwrite_output_dir,
                     training_args.resume_from_checkpoint)
    if Path(model_args.model_name_or_path).exists():  # a local folder: no network, so check it now
        check_got_ocr2(model_args.model_name_or_path, revision=model_args.model_revision)


def check_data_dir(data_dir: str | None) -> None:
    """--data_dir must be a folder; named here, before the builder looks for data.csv inside it."""
    if data_dir is None:
        return
    folder = Path(data_dir)
    if not folder.exists():
        raise SystemExit(f"--data_dir {data_dir}: no such folder. Give the folder that holds data.csv (image_file,text) "
                         "and the line images, or your ms-swift JSON with --dataset_config_name swift_json")
    if not folder.is_dir():
        raise SystemExit(f"--data_dir {data_dir} is a file; give the folder that holds it (the csv config reads "
                         "DIR/data.csv; another file name: --dataset_options csv_file=NAME)")


def check_max_steps(max_steps: int, num_train_epochs: float) -> None:
    """0 (and any negative but -1) would make the Trainer quietly train for --num_train_epochs instead."""
    if max_steps == 0 or max_steps < -1:
        raise SystemExit(f"--max_steps {max_steps}: give the number of optimizer updates, a positive number such as "
                         "--max_steps 1000 (or -1 to train for --num_train_epochs)")
    if max_steps == -1 and num_train_epochs <= 0:
        raise SystemExit(f"--max_steps -1 trains for --num_train_epochs, which is {num_train_epochs}; give a positive "
                         "number of epochs or of steps")


def check_demo_space(training_args) -> None:
    """The Space reads the model from the Hub, so it is published only after a push of the model."""
    if training_args.push_demo_space and not training_args.push_to_hub:
        raise SystemExit("--push_demo_space publishes a Space that reads the model from the Hub: add --push_to_hub "
                         "(and --hub_model_id USER/NAME)")
    if training_args.demo_space_id and not training_args.push_demo_space:
        raise SystemExit("--demo_space_id names the Space of --push_demo_space: add --push_demo_space")


def check_streaming(streaming: bool, max_steps: int) -> None:
    """A stream has no length, so the Trainer cannot turn --num_train_epochs into steps; say so before any loading."""
    if streaming and max_steps <= 0:
        raise SystemExit(f"--streaming needs --max_steps N with N > 0 (got --max_steps {max_steps}): a streamed "
                         "dataset has no length, so the number of optimizer updates cannot come from "
                         "--num_train_epochs")


def check_pages(lines_per_page: int, line_layout: str, streaming: bool = False) -> None:
    """--lines_per_page N > 1 typesets lines on pages at their natural aspect ratio: no per-line layout applies, and
    the page groups come from a dataset with a length (not yet a stream)."""
    if lines_per_page < 1:
        raise SystemExit(f"--lines_per_page {lines_per_page}: give the number of lines per page, 1 or more (1: one "
                         "line per image)")
    if lines_per_page > 1 and line_layout != "squash":
        raise SystemExit(f"--line_layout {line_layout} with --lines_per_page {lines_per_page}: on a page each line "
                         "keeps its aspect ratio and the page is already square, so a line layout does not apply; "
                         "drop --line_layout (or use --lines_per_page 1)")
    if lines_per_page > 1 and streaming:
        raise SystemExit(f"--streaming with --lines_per_page {lines_per_page}: pages are grouped from a dataset "
                         "with a length; drop --streaming (or use --lines_per_page 1)")


def check_resume_flags(checkpoint: str, model_args, lora_args) -> None:
    """A checkpoint resumes only with the LoRA shape it was saved with: name the flag, not peft's size mismatches."""
    config = Path(checkpoint) / "adapter_config.json"
    if config.is_file() and not lora_args.use_lora:
        raise SystemExit(f"--resume_from_checkpoint {checkpoint} holds a LoRA adapter; drop --no_use_lora to resume it")
    if lora_args.use_lora and not config.is_file():
        raise SystemExit(f"--resume_from_checkpoint {checkpoint} holds a fully fine-tuned model; add --no_use_lora to "
                         "resume it")
    if not config.is_file():
        return
    saved = json.loads(config.read_text(encoding="utf-8"))
    for flag, key, value in (("--lora_r", "r", lora_args.lora_r), ("--lora_alpha", "lora_alpha", lora_args.lora_alpha)):
        if saved.get(key) != value:
            raise SystemExit(f"{flag} {value}, but --resume_from_checkpoint {checkpoint} was trained with {flag} "
                             f"{saved.get(key)}; resume with the LoRA flags of that run")
    base = saved.get("base_model_name_or_path")
    if base and base != model_args.model_name_or_path:
        logger.warning("--resume_from_checkpoint %s was trained on %s, --model_name_or_path is %s", checkpoint, base,
                       model_args.model_name_or_path)


def check_resume_format(checkpoint: str, data_args) -> None:
    """A run resumes with the input format it was trained with (its checkpoint's hindi_ocr.json): a page-trained run
    resumed without --lines_per_page would go on as single lines without a word."""
    from .inference import SETTINGS_FILE

    path = Path(checkpoint) / SETTINGS_FILE
    if not path.is_file():
        logger.warning("--resume_from_checkpoint %s has no %s (a checkpoint of an older train.py): --lines_per_page "
                       "and --line_layout cannot be checked against the run it continues", checkpoint, SETTINGS_FILE)
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    for flag, key, value, default in (("--lines_per_page", "lines_per_page", data_args.lines_per_page, 1),
                                      ("--line_layout", "line_layout", data_args.line_layout, "squash")):
        if saved.get(key, default) != value:
            raise SystemExit(f"{flag} {value}, but --resume_from_checkpoint {checkpoint} was trained with {flag} "
                             f"{saved.get(key, default)} ({SETTINGS_FILE}); resume with {flag} "
                             f"{saved.get(key, default)}, or start a new run in another --output_dir")


def check_output_dir(output_dir: str, overwrite: bool, resume_from: str | None) -> None:
    """Refuse a non-empty output_dir unless resuming a checkpoint inside it or ``--overwrite_output_dir`` is given;
    overwriting writes over files of the same name and deletes nothing."""
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise SystemExit(f"--output_dir {output_dir} is a file; give a folder")
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if not entries:
        return
    if resume_from and folder.resolve() in Path(resume_from).resolve().parents:
        return  # continuing the run that is there
    shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
    if not overwrite:
        raise SystemExit(f"--output_dir {output_dir} already holds files ({shown}). Pass --resume_from_checkpoint "
                         "true to continue that run, --overwrite_output_dir to write over it (files of the same name "
                         "are replaced, nothing is deleted), or another --output_dir")
    logger.warning("--overwrite_output_dir: writing over %s, which holds %s; files of the same name are replaced, the "
                   "others are kept (old checkpoint-N folders too: --resume_from_checkpoint true may pick one)",
                   output_dir, shown)


def check_got_ocr2(name_or_path: str, revision: str | None = None, token: str | None = None) -> GotOcr2Config:
    """Fail early, with the checkpoint named, when it is not a GOT-OCR2 model (reads config.json only)."""
    from transformers import AutoConfig, GotOcr2Config  # here: the other checks must not wait for transformers

    try:
        config = AutoConfig.from_pretrained(name_or_path, revision=revision, token=token)
    except (OSError, ValueError) as err:  # ValueError: a config.json without model_type, a malformed Hub id
        raise SystemExit(
            f"--model_name_or_path {name_or_path!r}: could not load a config ({err}). Pass a local folder written by "
            "save_pretrained (e.g. from `python -m hindi_ocr.tiny DIR`) or a Hub id such as stepfun-ai/GOT-OCR-2.0-hf."
        ) from None
    if not isinstance(config, GotOcr2Config):
        raise SystemExit(
            f"--model_name_or_path {name_or_path!r} is a {config.model_type!r} model; this project fine-tunes "
            "GOT-OCR2 (model_type 'got_ocr2'), e.g. stepfun-ai/GOT-OCR-2.0-hf."
        )
    return config
