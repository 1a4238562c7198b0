"""Checks of an --adapter folder or Hub repo before peft loads it: weights from safetensors only (a pickle can run
code when loaded), and tensors that fit the base model, so a wrong pair of flags fails with both named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_PICKLE = "adapter_model.bin"
PEFT_PREFIX = "base_model.model."
LORA_AXES = {".lora_A.": 1, ".lora_B.": 0}  # A is r x in_features, B is out_features x r


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
