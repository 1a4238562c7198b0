"""Loading GOT-OCR2 checkpoints, processors and LoRA adapters the same way for training and for reading."""

from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoProcessor, GotOcr2Config, GotOcr2ForConditionalGeneration

from .adapters import adapter_weights, check_adapter_fits, not_an_adapter
from .checks import check_got_ocr2
from .examples import num_image_tokens_for
from .generation import configure_generation

logger = logging.getLogger(__name__)

# Module-name patterns (peft matches a str target with re.fullmatch against the full module name).
LANGUAGE_MODEL_PROJECTIONS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
VISION_PROJECTIONS = r".*vision_tower.*\.(qkv|proj|lin1|lin2)"
PROJECTOR = "multi_modal_projector"

DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_processor(name_or_path: str, config: GotOcr2Config, revision: str | None = None, token: str | None = None):
    """GOT's processor, with ``num_image_tokens`` set from the model (save_pretrained does not keep it)."""
    processor = AutoProcessor.from_pretrained(name_or_path, revision=revision, token=token)
    processor.num_image_tokens = num_image_tokens_for(config)
    processor.tokenizer.padding_side = "left"
    return processor


def load_base_model(name_or_path: str, config: GotOcr2Config, processor, dtype: str = "auto",
                    revision: str | None = None, token: str | None = None) -> GotOcr2ForConditionalGeneration:
    """The base checkpoint from safetensors only, with generation set to stop at ``<|im_end|>``."""
    try:
        model = GotOcr2ForConditionalGeneration.from_pretrained(
            name_or_path, config=config, revision=revision, token=token, dtype=DTYPES[dtype], use_safetensors=True
        )
    except OSError as err:
        hint = (" This project loads weights from safetensors only (a pytorch_model.bin is a pickle, which can run "
                "code when loaded); re-save the model with save_pretrained, which writes model.safetensors"
                if "safetensors" in str(err) else "")
        raise SystemExit(f"--model_name_or_path {name_or_path!r}: {err}{hint}") from None
    configure_generation(model, processor)
    return model


@contextmanager
def quiet_peft_wrap():
    """peft 0.21 reads transformers' deprecated ``is_gradient_checkpointing`` when it wraps a model, and
    transformers 5.24 warns about it on every run: a warning about library internals the user cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def lora_target_modules(adapt_vision: bool) -> str:
    """One regex over module names: the language model's attention and MLP projections, optionally the vision ones."""
    if adapt_vision:
        return f"({LANGUAGE_MODEL_PROJECTIONS})|({VISION_PROJECTIONS})"
    return LANGUAGE_MODEL_PROJECTIONS


def attach_lora(model, r: int, alpha: int, dropout: float, adapt_vision: bool = False,
                train_projector: bool = False, target_modules: str | None = None) -> PeftModel:
    """Wrap the base model in a LoRA adapter (peft), optionally training the projector in full."""
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules or lora_target_modules(adapt_vision),
        modules_to_save=[PROJECTOR] if train_projector else None,
        bias="none",
    )
    with quiet_peft_wrap():
        peft_model = get_peft_model(model, config)
    trainable, total = peft_model.get_nb_trainable_parameters()
    logger.info("LoRA: %d trainable of %d parameters (%.3f%%)", trainable, total, 100 * trainable / total)
    return peft_model


def adapter_base_model(adapter: str, revision: str | None = None, token: str | None = None) -> str | None:
    """The base checkpoint an adapter was trained on, as recorded in its adapter_config.json."""
    local = Path(adapter) / "adapter_config.json"
    if local.is_file():
        return json.loads(local.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if Path(adapter).is_dir():
        raise not_an_adapter(adapter, "adapter_config.json")
    from peft import PeftConfig

    try:
        return PeftConfig.from_pretrained(adapter, revision=revision, token=token).base_model_name_or_path
    except Exception as err:  # noqa: BLE001 - offline, unknown repo, bad id: all end in this message
        raise SystemExit(f"--adapter {adapter}: not a local folder, and no adapter_config.json could be fetched from "
                         f"the Hub ({type(err).__name__}: {err})") from None


def load_for_reading(base: str, adapter: str | None = None, revision: str | None = None,
                     adapter_revision: str | None = None, token: str | None = None, dtype: str = "auto",
                     merge: bool = False, allow_pickle_adapter: bool = False):
    """Model and processor for inference: the base, plus an adapter from a folder or the Hub; merged when asked.

    The adapter's weights must be safetensors (unless ``allow_pickle_adapter``) and must fit the base.
    """
    weights = adapter_weights(adapter, adapter_revision, token, allow_pickle_adapter) if adapter else None
    config = check_got_ocr2(base, revision=revision, token=token)
    processor_source = base
    if adapter and _has_processor(adapter, adapter_revision, token):
        processor_source = adapter
    processor = load_processor(processor_source, config,
                               revision=adapter_revision if processor_source == adapter else revision, token=token)
    model = load_base_model(base, config, processor, dtype=dtype, revision=revision, token=token)
    if adapter:
        check_adapter_fits(model, weights, adapter, base)
        with quiet_peft_wrap():
            model = PeftModel.from_pretrained(model, adapter, revision=adapter_revision, token=token)
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model, processor


PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")  # transformers 5 writes the first


def _has_processor(source: str, revision: str | None, token: str | None) -> bool:
    """Adapters pushed by train.py carry the processor they were trained with; older ones may not."""
    if Path(source).is_dir():
        return any((Path(source) / name).is_file() for name in PROCESSOR_FILES)
    from huggingface_hub import file_exists

    try:
        return any(file_exists(source, name, revision=revision, token=token) for name in PROCESSOR_FILES)
    except Exception:  # offline or private: fall back to the base model's processor
        return False
