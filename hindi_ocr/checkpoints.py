"""Which Trainer checkpoints a run can resume from, and which one ``--resume_from_checkpoint`` means.

A kill during a save leaves a ``checkpoint-N`` folder that looks like the others. ``Trainer._save_checkpoint``
writes the weights, then optimizer, scheduler and RNG state, and ``trainer_state.json`` last, so a folder without
that file was interrupted. A file cut short (a full disk, a power cut before the OS flushed) is found from the
file's own length records: the safetensors header, the zip directory at the end of a ``torch.save`` file. Nothing
here unpickles anything.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")
OPTIMIZER_STATE = ("optimizer.pt", "scheduler.pt")  # without them a resumed run would not continue the same way
RNG_STATE = "rng_state.pth"  # rng_state_<rank>.pth with several processes; without it dropout draws differ


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is cut short or malformed, or None: its size must match what its header lists."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if header_size > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(header_size))
        end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as error:
        return f"{path.name} has no readable safetensors header ({error})"
    expected = 8 + header_size + end
    return None if size == expected else f"{path.name} is {size} bytes, its header says {expected} (cut short)"


def checkpoint_problem(folder) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or None when every file the Trainer writes is whole."""
    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    missing = [name for name in (TRAINER_STATE, *OPTIMIZER_STATE) if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in WEIGHTS):
        missing.insert(0, " or ".join(WEIGHTS[:2]))
    if not any(folder.glob("rng_state*.pth")):
        missing.append(RNG_STATE)
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return f"{TRAINER_STATE} is not valid JSON (cut short)"
    index = folder / WEIGHTS[2]
    if index.is_file():
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        absent = sorted(name for name in shards if not (folder / name).is_file())
        if absent:
            return f"missing weight shard(s) {', '.join(absent)}"
    for path in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem:
            return problem
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        if not zipfile.is_zipfile(path):
            return f"{path.name} is cut short (no zip directory at its end)"
    return None


def checkpoints(folder) -> list[Path]:
    """``checkpoint-N`` folders in ``folder``, newest (highest N) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_NAME.match(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found, reverse=True)]


def newest_complete(folder, warn: bool = True) -> str | None:
    """The newest checkpoint that can be resumed from; each newer, incomplete one is named in a warning."""
    for path in checkpoints(folder):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        if warn:
            logger.warning("skipping %s: %s (a save was interrupted); trying the one before", path, problem)
    return None


def resume_point(resume, output_dir: str) -> str | None:
    """What ``Trainer.train`` resumes from: None for a fresh run, else a complete checkpoint folder.

    ``resume`` is ``--resume_from_checkpoint``: empty or ``false`` (fresh run), ``true`` (the newest complete
    checkpoint in ``output_dir``), or a folder (a bare ``checkpoint-N`` is also looked for in ``output_dir``).
    """
    text = "" if resume is None or resume is False else str(resume).strip()
    if text.lower() in ("", "false"):
        return None
    if resume is True or text.lower() == "true":
        found = newest_complete(output_dir)
        if found is None:
            raise SystemExit(f"--resume_from_checkpoint true: no complete checkpoint-N folder in --output_dir "
                             f"{output_dir}; drop the flag to start afresh, or pass a checkpoint folder")
        logger.info("resuming from %s, the newest complete checkpoint in %s", found, output_dir)
        return found
    folder = Path(text)
    if not folder.is_dir() and (Path(output_dir) / text).is_dir():
        folder = Path(output_dir) / text
    if not folder.is_dir():
        raise SystemExit(f"--resume_from_checkpoint {text}: no such folder; pass a checkpoint-N folder written by "
                         f"train.py, or true for the newest complete one in --output_dir {output_dir}")
    problem = checkpoint_problem(folder)
    if problem:
        other = newest_complete(folder.parent, warn=False)
        hint = (f"the newest complete one beside it is {other}: pass that, or true" if other
                else "no complete checkpoint is beside it")
        raise SystemExit(f"--resume_from_checkpoint {text}: cannot resume from it: {problem} (a save interrupted "
                         f"by a kill or a full disk leaves such a folder); {hint}")
    return str(folder)


class FullModelReloading:
    """Trainer mixin: a fully fine-tuned checkpoint (``model.safetensors``) is read back with ``from_pretrained``.

    Why: transformers 5 saves GOT-OCR2 under its original checkpoint key names (``language_model.model.*``), and
    ``Trainer._load_best_model`` and ``_load_from_checkpoint`` put ``model.safetensors`` into the model with a plain
    ``load_state_dict(strict=False)``, which matches none of them: ``load_best_model_at_end`` silently kept the last
    weights, and a resumed run went on from the base. ``from_pretrained`` applies the key mapping; then every
    weight must match. Adapters (peft's own loading), DeepSpeed and FSDP go the Trainer's way.
    """

    def _load_best_model(self):
        if not self._reload_full_model(self.state.best_model_checkpoint, self.model):
            super()._load_best_model()

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self._reload_full_model(resume_from_checkpoint, model if model is not None else self.model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _reload_full_model(self, folder: str, model) -> bool:
        weights = [Path(folder) / name for name in WEIGHTS[1:]]
        if (hasattr(model, "peft_config") or self.is_deepspeed_enabled or self.is_fsdp_enabled
                or not any(path.is_file() for path in weights)):
            return False
        saved = type(model).from_pretrained(folder, dtype=next(model.parameters()).dtype)
        model.load_state_dict(saved.state_dict(), strict=True)
        logger.info("model weights loaded from %s", folder)
        return True
