"""The pretrained tiny Hindi reader shipped with the package: a from-scratch GOT-OCR2 that reads printed Hindi lines.

    python -m hindi_ocr.reader OUT_DIR

writes a standard ``GotOcr2ForConditionalGeneration`` checkpoint (float32), its processor, ``hindi_ocr.json`` (its
line layout) and its model card, with no network access: ``infer.py --model_name_or_path OUT_DIR`` reads with it,
``train.py --model_name_or_path OUT_DIR`` fine-tunes it (LoRA by default: the quick start), and the demo serves it
when no model is named. The weights are kept in ``hindi_ocr/assets/reader/`` in float16 (half the size in git);
how they were trained is in that folder's README.md (``python -m hindi_ocr.pretrain``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets" / "reader"
LINE_LAYOUT = "fold"
READER_LICENSE = "apache-2.0"  # trained here, from scratch, on CC0 and Apache-2.0 text (assets/reader/README.md)


def write_reader(out_dir, overwrite: bool = False) -> Path:
    """Write the reader to ``out_dir`` (float32 weights, processor, settings, card); refuses a used folder."""
    import torch
    from transformers import AutoProcessor, GotOcr2ForConditionalGeneration

    from .inference import save_settings

    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SystemExit(f"{out} already holds files; choose an empty folder or pass --overwrite "
                         "(files of the same name are replaced)")
    if not (ASSETS / "model.safetensors").is_file():
        raise SystemExit(f"the reader's weights are missing from {ASSETS}; reinstall the package")
    model = GotOcr2ForConditionalGeneration.from_pretrained(ASSETS, dtype=torch.float32)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(ASSETS).save_pretrained(out)
    save_settings(str(out), LINE_LAYOUT)
    shutil.copyfile(ASSETS / "README.md", out / "README.md")
    return out


def reader_path() -> Path:
    """The reader as a model folder in the user's cache (written once per shipped version of the weights), for
    the demo and anything else that needs a path when no model is named."""
    import hashlib
    import os

    digest = hashlib.sha256((ASSETS / "model.safetensors").read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("HINDI_OCR_CACHE") or Path.home() / ".cache" / "hindi_ocr")
    folder = cache / f"reader-{digest}"
    if not (folder / "model.safetensors").is_file():
        partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
        write_reader(partial, overwrite=True)
        if folder.exists():  # another process wrote it meanwhile
            shutil.rmtree(partial)
        else:
            partial.replace(folder)
    return folder


def export_reader(checkpoint, assets=ASSETS) -> Path:
    """Store a trained reader (``python -m hindi_ocr.pretrain``'s ``last/``) in ``assets`` with float16 weights."""
    import torch
    from transformers import AutoProcessor, GotOcr2ForConditionalGeneration

    assets = Path(assets)
    model = GotOcr2ForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32)
    model.to(torch.float16).save_pretrained(assets)
    AutoProcessor.from_pretrained(checkpoint).save_pretrained(assets)
    return assets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m hindi_ocr.reader", description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds files")
    a = p.parse_args(argv)
    out = write_reader(a.out_dir, a.overwrite)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote the Hindi reader to {out} ({size / 1e6:.1f} MB); read with: "
          f"python infer.py --model_name_or_path {out} IMAGE.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
