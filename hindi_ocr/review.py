"""The review loop: the lines the model doubts, written as a seed-layout folder for a person to correct and train on.

``infer.py ... --review DIR --review_below X`` (and/or ``--review_worst N``) copies the images of the lines whose
confidence is below X (and of the N least confident), plus every line ended by the repetition stop, into
``DIR/output_images/`` and writes ``DIR/data.csv`` (``image_file,text``) with the model's reading in ``text``. A
person corrects the text column; ``python train.py --data_dir DIR`` then trains on the corrected lines (the dataset
builder ignores the extra columns: ``confidence``, ``repetition`` and ``source``, the original image).
Least confident lines come first. A non-empty DIR is only written into when asked (``--overwrite_review``): it may
hold corrections.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Sequence

COLUMNS = ["image_file", "text", "confidence", "repetition", "source"]
IMAGES = "output_images"


def check_review_dir(folder: str, overwrite: bool = False) -> None:
    """Refuse, before any model loads, a review folder that already holds files (unless ``overwrite``)."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise SystemExit(f"--review {folder}: a file, not a folder; name a new or empty folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise SystemExit(f"--review {folder}: the folder already holds files (corrections, perhaps); name a new or "
                         "empty folder, or pass --overwrite_review to replace its data.csv and add images")


def is_repetition(record: dict) -> bool:
    """A record's repetition flag, also as read back from a CSV (``--resume``: "True"/"False")."""
    return record.get("repetition") in (True, "True", "true", 1)


def confidence_of(record: dict) -> float:
    """A record's confidence as a number (a CSV gives text); 0 when there is none."""
    value = record.get("confidence")
    return 0.0 if value in (None, "") else float(value)


def doubtful(records: Sequence[dict], below: float | None = None, worst: int | None = None) -> list[int]:
    """Indices of the lines to review, least confident first: confidence < ``below``, the ``worst`` least confident
    lines, and every line the repetition stop ended (a line without a confidence counts as 0)."""
    def confidence(i):
        return confidence_of(records[i])

    order = sorted(range(len(records)), key=lambda i: (confidence(i), i))
    chosen = set(order[:worst] if worst else [])
    chosen |= {i for i in order if is_repetition(records[i])}
    if below is not None:
        chosen |= {i for i in order if confidence(i) < below}
    return [i for i in order if i in chosen]


def write_review(folder: str, records: Sequence[dict], below: float | None = None, worst: int | None = None) -> int:
    """Write the doubtful lines of ``records`` (infer.py's: image, prediction, confidence, repetition) to ``folder``
    as data.csv + output_images/; returns how many lines were written."""
    out = Path(folder)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    rows = []
    for number, i in enumerate(doubtful(records, below, worst)):
        source = Path(records[i]["image"])
        name = f"{number:05d}_{source.name}"  # numbered: two folders' line_1.png stay apart
        shutil.copyfile(source, out / IMAGES / name)
        rows.append({"image_file": name, "text": records[i]["prediction"], "confidence": records[i].get("confidence"),
                     "repetition": is_repetition(records[i]), "source": str(source)})
    with open(out / "data.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
