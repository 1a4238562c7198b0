"""train.py's flags: the argument groups (model, data, LoRA, Trainer with the seed recipe's defaults) and how they
are read from the command line or a JSON/YAML file, including --dataset_options."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from transformers import HfArgumentParser, Seq2SeqTrainingArguments

from .checks import check_pages, check_streaming
from .examples import LINE_LAYOUTS
from .hub import HubTokenNotPickled
from .precision import check_bf16

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "stepfun-ai/GOT-OCR-2.0-hf"
DEFAULT_DATASET = "./dataset_builder"
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")  # as accelerate


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default=DEFAULT_MODEL, metadata={"help": "GOT-OCR2 checkpoint: a Hub id or a local folder."}
    )
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the checkpoint."})
    dtype: str = field(
        default="float32",
        metadata={"help": "Weights dtype when loading.", "choices": ["auto", "float32", "bfloat16", "float16"]},
    )


@dataclass
class DataArguments:
    dataset_name: str = field(
        default=DEFAULT_DATASET,
        metadata={"help": "This repo's ./dataset_builder (CSV, swift JSON or synthetic lines), or a Hub dataset."},
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "csv | swift_json | synthetic (default: csv with --data_dir, else synthetic)."}
    )
    data_dir: str | None = field(default=None, metadata={"help": "Folder with data.csv and the line images."})
    dataset_options: str | None = field(
        default=None,
        metadata={"help": "Builder options as key=value,... e.g. validation_ratio=0.1,skip_invalid=true "
                          "(see dataset_builder/README.md)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training lines."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation lines."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only the first N test lines."})
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream the lines (datasets.IterableDataset): rows are read from the annotation files as "
                          "they are used and each image is checked when its row comes up; nothing is written to the "
                          "cache. Needs --max_steps."},
    )
    shuffle_buffer_size: int = field(
        default=10_000, metadata={"help": "--streaming: training lines held in the shuffle buffer (seeded by --seed)."}
    )
    line_layout: str = field(
        default="squash",
        metadata={"help": "How a wide line becomes GOT's square input.", "choices": list(LINE_LAYOUTS)},
    )
    lines_per_page: int = field(
        default=1,
        metadata={"help": "Lines typeset on one page per image (GOT's input), so one vision pass reads them all; "
                          "1: one line per image, as --line_layout says. Batch sizes count pages."},
    )
    regroup_pages: bool = field(
        default=True,
        metadata={"help": "--lines_per_page > 1: new page groups and margins each epoch (variety); false: the same "
                          "pages every epoch, so the image-feature cache applies from the second epoch."},
    )
    max_target_tokens: int = field(
        default=256, metadata={"help": "Longest transcription of one line, in tokens (a page: N times this)."}
    )
    num_sample_predictions: int = field(
        default=3, metadata={"help": "Prediction/reference pairs printed at each evaluation."}
    )


@dataclass
class LoraArguments:
    use_lora: bool = field(default=True, metadata={"help": "Train a LoRA adapter (False: full fine-tuning)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_vision: bool = field(
        default=False, metadata={"help": "Also adapt the vision encoder's attention and MLP (new scripts, new fonts)."}
    )
    train_projector: bool = field(
        default=False, metadata={"help": "Train the vision-to-language projector in full (saved with the adapter)."}
    )
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "Regex over module names that overrides the default LoRA targets."}
    )


@dataclass
class OcrTrainingArguments(HubTokenNotPickled, Seq2SeqTrainingArguments):
    """Seq2SeqTrainingArguments with the seed recipe's defaults (LoRA, lr 2e-5, batch 1 x 4, 1000 steps); pickled
    (training_args.bin) without the Hub token."""

    output_dir: str = field(default="outputs/got-ocr2-hindi", metadata={"help": "Where checkpoints are written."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate."})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "Lines per device per step."})
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Lines per device per eval step."})
    gradient_accumulation_steps: int = field(default=4, metadata={"help": "Steps per optimizer update."})
    max_steps: int = field(default=1000, metadata={"help": "Optimizer updates in all."})
    eval_strategy: str = field(default="steps", metadata={"help": "When to evaluate: no | steps | epoch."})
    eval_steps: float = field(default=200, metadata={"help": "Evaluate every N updates."})
    save_steps: float = field(default=200, metadata={"help": "Save a checkpoint every N updates."})
    logging_steps: float = field(default=10, metadata={"help": "Log the loss every N updates."})
    predict_with_generate: bool = field(default=True, metadata={"help": "Read the eval lines to score CER/WER."})
    metric_for_best_model: str = field(default="cer", metadata={"help": "Metric that picks the best checkpoint."})
    greater_is_better: bool = field(default=False, metadata={"help": "CER: lower is better."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep image/text for the collator."})
    # list[str] | None with a factory: HfArgumentParser turns `str | list[str]` into nargs="+" with no default, so a
    # run without --report_to got [None] and the Trainer refused it (transformers 5.24).
    report_to: list[str] | None = field(
        default_factory=lambda: ["tensorboard"], metadata={"help": "Loggers: tensorboard (default), none, wandb, ..."}
    )
    logging_nan_inf_filter: bool = field(
        default=False, metadata={"help": "Replace NaN/inf losses in the logs by the running mean. Off: it hides a run "
                                         "gone non-finite (logging 'loss 0.0') and costs a device sync per step; "
                                         "the non-finite guard stops such a run instead."}
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after N evaluations without a better metric_for_best_model."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Write into an output_dir that already holds files (a previous run); files of "
                                         "the same name are replaced, nothing is deleted."}
    )
    push_demo_space: bool = field(
        default=False, metadata={"help": "With --push_to_hub: after the model, publish a Gradio Space that reads "
                                         "line images with it (python -m hindi_ocr.demo); the card links to it."}
    )
    demo_space_id: str | None = field(
        default=None, metadata={"help": "--push_demo_space: the Space's USER/NAME (default: the model repo + -demo)."}
    )
    image_feature_cache_mb: int = field(
        default=2048, metadata={"help": "Vision tower and projector frozen (LoRA on the language model only): keep "
                                        "each line image's features in RAM, up to this many MiB, so the encoder runs "
                                        "once per distinct image instead of every epoch; 0 encodes at every step."}
    )

    def __post_init__(self):
        launched = max(int(os.environ.get(name) or 1) for name in WORLD_SIZE_VARIABLES) > 1
        # torchrun / accelerate launch on a machine without an accelerator: accelerate only sets up CPU data
        # parallelism (gloo) when told the run is on CPU; otherwise every process trains and evaluates alone
        # (no gradient all-reduce, each rank's CER from its own shard).
        if launched and not self.use_cpu and not torch.accelerator.is_available():
            self.use_cpu = True
        if self.bf16 or self.bf16_full_eval:  # before transformers' own check, which says less (or emulates bf16)
            check_bf16("--bf16 true" if self.bf16 else "--bf16_full_eval true", use_cpu=self.use_cpu)
        # One process: accelerate would look for a process group for --ddp_backend and fail; the same flags must
        # work with and without a launcher.
        if not launched and self.ddp_backend:
            logger.info("--ddp_backend %s ignored: not launched with torchrun/accelerate launch", self.ddp_backend)
            self.ddp_backend = None
        if not torch.accelerator.is_available():
            self.dataloader_pin_memory = False  # nothing to pin for; torch warns once per DataLoader otherwise
        super().__post_init__()


ARGUMENT_GROUPS = (ModelArguments, DataArguments, LoraArguments, OcrTrainingArguments)


def parse_args(argv: list[str] | None = None):
    """Flags, or a JSON/YAML file of them as the first argument (later flags override the file)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(ARGUMENT_GROUPS)
    if argv and argv[0].endswith((".json", ".yaml", ".yml")):
        path = Path(argv.pop(0))
        text = path.read_text(encoding="utf-8")
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            parser.error(f"{path}: unknown option(s) {', '.join(unknown)}")
        parser.set_defaults(**values)
    groups = parser.parse_args_into_dataclasses(args=argv)
    check_streaming(groups[1].streaming, groups[3].max_steps)
    check_pages(groups[1].lines_per_page, groups[1].line_layout, groups[1].streaming)
    return groups


def parse_options(text: str | None) -> dict:
    """``a=1,b=x,c=true`` -> {"a": 1, "b": "x", "c": True}: values read as JSON when they parse, else strings.

    A part without ``=`` continues the previous value, so list-valued options keep their commas:
    ``fonts=Hind,Teko-Bold,seed=3`` -> {"fonts": "Hind,Teko-Bold", "seed": 3}.
    """
    raw: dict[str, str] = {}
    key = None
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            key = name.strip()
            raw[key] = value.strip()
        elif not sep and key is not None:
            raw[key] += "," + item
        else:
            raise SystemExit(f"--dataset_options: expected key=value, got {item!r}")
    options = {}
    for key, value in raw.items():
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options
