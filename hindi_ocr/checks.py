"""Flag checks that run before anything slow: a wrong flag should cost a second and say what to do, not fail after
minutes of loading; no run writes over another unasked; adapter weights load from safetensors and must fit the base.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .checkpoints import resume_point

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_PICKLE = "adapter_model.bin"
PEFT_PREFIX = "base_model.model."
LORA_AXES = {".lora_A.": 1, ".lora_B.": 0}  # A is r x in_features, B is out_features x r


def positive_int(text: str) -> int:
    """argparse type for counts such as --batch_size."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def check_training_run(model_args, data_args, lora_args, training_args) -> None:
    """The local train.py checks, quickest first, before any network access or model loading; sets
    ``training_args.resume_from_checkpoint`` to a complete folder. A Hub model id is checked when the model loads,
    after the data (a wrong --data_dir should not wait for the Hub's retries)."""
    from .modeling import check_got_ocr2

    check_data_dir(data_args.data_dir)
    check_max_steps(training_args.max_steps, training_args.num_train_epochs)
    training_args.resume_from_checkpoint = resume_point(training_args.resume_from_checkpoint,
                                                        training_args.output_dir)
    if training_args.resume_from_checkpoint:
        check_resume_flags(training_args.resume_from_checkpoint, model_args, lora_args)
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


def check_streaming(streaming: bool, max_steps: int) -> None:
    """A stream has no length, so the Trainer cannot turn --num_train_epochs into steps; say so before any loading."""
    if streaming and max_steps <= 0:
        raise SystemExit(f"--streaming needs --max_steps N with N > 0 (got --max_steps {max_steps}): a streamed "
                         "dataset has no length, so the number of optimizer updates cannot come from "
                         "--num_train_epochs")


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


def adapter_weights(adapter: str, revision: str | None = None, token: str | None = None,
                    allow_pickle: bool = False) -> str | None:
    """Local path of the adapter's safetensors weights (downloaded from the Hub if need be).

    An adapter with only ``adapter_model.bin`` (a pickle, which can run code when loaded) is refused unless
    ``allow_pickle``; then None is returned and peft loads it with ``torch.load(weights_only=True)``.
    """
    folder = Path(adapter)
    if folder.is_dir():
        if (folder / ADAPTER_WEIGHTS).is_file():
            return str(folder / ADAPTER_WEIGHTS)
        has_pickle = (folder / ADAPTER_PICKLE).is_file()
    else:
        from huggingface_hub import file_exists, hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            return hf_hub_download(adapter, ADAPTER_WEIGHTS, revision=revision, token=token)
        except EntryNotFoundError:
            has_pickle = file_exists(adapter, ADAPTER_PICKLE, revision=revision, token=token)
        except Exception as error:  # noqa: BLE001 - offline, unknown repo, bad id: all end in this message
            raise SystemExit(f"--adapter {adapter}: not a local folder, and {ADAPTER_WEIGHTS} could not be fetched "
                             f"from the Hub ({type(error).__name__}: {error})") from None
    if has_pickle and allow_pickle:
        logger.warning("--allow_pickle_adapter: loading %s/%s, a pickle, with torch.load(weights_only=True)",
                       adapter, ADAPTER_PICKLE)
        return None
    if has_pickle:
        raise SystemExit(f"--adapter {adapter} has only {ADAPTER_PICKLE}, a pickle file that can run code when it is "
                         f"loaded; this project loads adapters from {ADAPTER_WEIGHTS} only. If you trust where it "
                         "came from, pass --allow_pickle_adapter (it is then loaded with torch.load(weights_only="
                         "True)), or re-save it once with save_pretrained, which writes safetensors")
    raise not_an_adapter(adapter, ADAPTER_WEIGHTS)


def not_an_adapter(adapter: str, missing: str) -> SystemExit:
    """The error for an --adapter folder without ``missing``; a full model there is a different flag's job."""
    full = Path(adapter, "model.safetensors").is_file()
    hint = " (it holds a full model: pass it as --model_name_or_path)" if full else ""
    return SystemExit(f"--adapter {adapter} has no {missing}{hint}; pass the --output_dir of a LoRA run of "
                      "train.py, or a checkpoint-N folder inside it")


def adapter_mismatches(model, weights_file: str) -> list[str]:
    """Adapter tensors that do not fit ``model`` (a base model, before peft wraps it): missing module or shape."""
    from safetensors import safe_open

    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    problems = []
    with safe_open(weights_file, framework="pt") as handle:
        for key in handle.keys():
            shape = tuple(handle.get_slice(key).get_shape())
            name = key.removeprefix(PEFT_PREFIX)
            part = next((p for p in LORA_AXES if p in name), None)
            if part is None and ".lora_" in name:
                continue  # other LoRA variants' extras (DoRA magnitudes...) have no plain counterpart
            target = name.split(part)[0] + ".weight" if part else name
            base = shapes.get(target)
            if base is None:
                problems.append(f"{target} is not in the base")
            elif (base[LORA_AXES[part]] != shape[LORA_AXES[part]]) if part else base != shape:
                problems.append(f"{name} is {list(shape)} but the base's {target} is {list(base)}")
    return problems


def check_adapter_fits(model, weights_file: str | None, adapter: str, base: str) -> None:
    """Refuse, naming both, an adapter trained for another base: its weights would not load, or load as noise."""
    if weights_file is None:
        return  # a pickle adapter allowed by the user: peft reports its own mismatches
    config = Path(weights_file).with_name("adapter_config.json")
    trained_on = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path") if config.is_file() \
        else None
    problems = adapter_mismatches(model, weights_file)
    if problems:
        raise SystemExit(f"--adapter {adapter} does not fit the base model {base}: it was trained on {trained_on!r} "
                         f"(base_model_name_or_path in its adapter_config.json) and {len(problems)} of its tensors do "
                         f"not match this base, e.g. {'; '.join(problems[:3])}. Drop --model_name_or_path to load the "
                         "base the adapter names, or pass the base it was trained on")
    if trained_on and trained_on != base and not (Path(trained_on).exists() and Path(base).exists()
                                                   and Path(trained_on).resolve() == Path(base).resolve()):
        logger.warning("--adapter %s was trained on %s; loading it onto %s, whose shapes match", adapter, trained_on,
                       base)
