"""Reading lines with a trained model: input discovery, batched greedy generation, output files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
from PIL import Image

from .examples import OcrExampleBuilder

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
SETTINGS_FILE = "hindi_ocr.json"  # training-time choices that reading must repeat (line layout)


@dataclass
class Line:
    image: str
    reference: str | None = None


def lines_from_paths(paths: Sequence[str]) -> list[Line]:
    """Image files as given, and the images inside folders (sorted by name); each checked before any model loads."""
    from .rows import check_image

    lines = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            lines += [Line(str(p)) for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        elif path.is_file():
            lines.append(Line(str(path)))
        else:
            raise SystemExit(f"{raw}: no such image or folder")
    for line in lines:
        problem = check_image(line.image)
        if problem:
            raise SystemExit(f"{line.image}: not a readable image ({problem}); remove it from the arguments")
    return lines


def lines_from_data_dir(data_dir: str) -> list[Line]:
    """Every row of a seed-layout folder (data.csv + images), with its transcription as reference."""
    from .rows import InvalidRowError, read_csv_rows

    try:
        return [Line(row.image_path, row.text) for row in read_csv_rows(data_dir)]
    except (InvalidRowError, FileNotFoundError) as err:
        raise SystemExit(f"--data_dir {data_dir}: {err}") from None


def read_images(model, builder: OcrExampleBuilder, images: Sequence[Image.Image]) -> list[str]:
    """One batched greedy generation over images; returns the decoded lines."""
    inputs = builder.prompt_inputs(images)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        generated = model.generate(**inputs)
    new_tokens = generated[:, inputs["input_ids"].shape[1]:]
    return builder.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def read_lines(model, builder: OcrExampleBuilder, lines: Sequence[Line], batch_size: int = 8) -> Iterator[str]:
    """Predictions for lines in order, decoding each batch's images only when it is its turn."""
    for start in range(0, len(lines), batch_size):
        batch = lines[start : start + batch_size]
        # load() reads the pixels and closes the file; the builder makes them upright RGB (to_rgb) once
        images = [Image.open(line.image) for line in batch]
        for image in images:
            image.load()
        yield from read_images(model, builder, images)


def write_predictions(path: str, records: Iterable[dict]) -> None:
    """JSONL (``.jsonl``/``.json``) or CSV (``.csv``) by the file's extension."""
    records = list(records)
    out = Path(path)
    if out.suffix.lower() == ".csv":
        fields = ["image", "prediction"] + [k for k in ("reference", "tesseract") if any(k in r for r in records)]
        with out.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(records)
    elif out.suffix.lower() in {".jsonl", ".json"}:
        with out.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        raise SystemExit(f"--output {path}: use a .jsonl or .csv file name")


def save_settings(output_dir: str, line_layout: str) -> None:
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / SETTINGS_FILE).write_text(json.dumps({"line_layout": line_layout}) + "\n", encoding="utf-8")


def load_settings(source: str | None, revision: str | None = None, token: str | None = None) -> dict:
    """Settings saved beside an adapter or model, locally or on the Hub; empty when there are none."""
    if not source:
        return {}
    path = Path(source) / SETTINGS_FILE
    if not path.is_file():
        if Path(source).is_dir():
            return {}
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, SETTINGS_FILE, revision=revision, token=token))
        except Exception:
            return {}
    return json.loads(path.read_text(encoding="utf-8"))
