"""The deterministic train/validation/test split: rows ordered by a seeded hash of their image name, so a line
keeps its split when the annotation file is reordered or grows. :mod:`hindi_ocr.streaming` uses the same order."""

from __future__ import annotations

import hashlib

import numpy as np

from .rows import LineRow, read_csv_rows, read_swift_rows

SPLITS = ("train", "validation", "test")


def split_key(seed, image_file: str) -> int:
    """A row's place in the split order: 64 bits of a seeded SHA-256 of its image name."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{image_file}".encode()).digest()[:8], "big")


def split_cuts(keys, validation_ratio: float, test_ratio: float):
    """(test cut, validation cut) over rows ordered by (key, position): the last such pair of each carved split,
    or None for a split of no rows. See :func:`split_of`."""
    for name, ratio in (("validation_ratio", validation_ratio), ("test_ratio", test_ratio)):
        if not 0 <= ratio < 1:
            raise ValueError(f"{name} must be in [0, 1), got {ratio}")
    n = len(keys)
    n_test, n_val = [max(1, round(n * r)) if r > 0 else 0 for r in (test_ratio, validation_ratio)]
    if n_test + n_val >= n:
        raise ValueError(f"{n} rows are too few for test_ratio={test_ratio} and "
                         f"validation_ratio={validation_ratio}: training, validation and test need a row each "
                         "at least; add rows (a small folder, e.g. infer.py --review's, can be appended to your "
                         "training data.csv), or give validation and test their own files (a TestSamples/ folder, or data_files=)")
    keys = np.asarray(keys, dtype=np.uint64)
    order = np.argsort(keys, kind="stable")  # ties (one image listed twice) in file order

    def cut(rank):
        return (int(keys[order[rank]]), int(order[rank])) if rank >= 0 else None

    return cut(n_test - 1), (cut(n_test + n_val - 1) if n_val else None)


def split_of(key: int, position: int, cuts) -> str:
    """The split of the row at ``position`` (among the rows being split) whose :func:`split_key` is ``key``."""
    test, validation = cuts
    if test is not None and (key, position) <= test:
        return "test"
    if validation is not None and (key, position) <= validation:
        return "validation"
    return "train"


def split_rows(rows: list[LineRow], validation_ratio: float, test_ratio: float,
               seed: int) -> dict[str, list[LineRow]]:
    """Deterministic train/validation/test split: rows ordered by a seeded hash of ``image_file``.

    Hashing (rather than shuffling positions) keeps a line in its split when the file is reordered or grows.
    A non-zero ratio gets at least one row as long as one row is left for training.
    """
    keys = [split_key(seed, row.image_file) for row in rows]
    cuts = split_cuts(keys, validation_ratio, test_ratio)
    parts = {split: [] for split in SPLITS}
    for position, (row, key) in enumerate(zip(rows, keys)):
        parts[split_of(key, position, cuts)].append(row)
    return parts


def read_splits(inputs: dict, fmt: str, *, validation_ratio=0.05, test_ratio=0.05, split_seed=42,
                skip_invalid=False, check_images="verify") -> dict[str, list[LineRow]]:
    """Read every input file (``fmt``: ``csv`` or ``swift_json``); carve the splits not given off train."""
    def read(entry):
        if fmt == "csv":
            path, images = entry
            return read_csv_rows(path, images, skip_invalid=skip_invalid, check_images=check_images)
        return read_swift_rows(entry, skip_invalid=skip_invalid, check_images=check_images)

    given = {split: [row for entry in entries for row in read(entry)] for split, entries in inputs.items()}
    carved = split_rows(given.pop("train"), 0 if "validation" in given else validation_ratio,
                        0 if "test" in given else test_ratio, split_seed)
    return {**carved, **given}
