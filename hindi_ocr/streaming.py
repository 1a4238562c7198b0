"""Streamed rows: the reading of :mod:`hindi_ocr.rows` in two passes. An index pass reads the annotation files
alone (record and text checks, repeats, the split order) and each image is looked up and checked only when its row is
yielded, so a run over millions of lines starts after one read of the CSV instead of one open of every image."""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from pathlib import Path

from .rows import _anywhere, _check_row, _csv_records, _locator, _Rejects, _rows, _swift_records
from .splits import SPLITS, split_cuts, split_key, split_of
from .text import normalize_text


@dataclass(frozen=True)
class StreamSource:
    """One annotation file of a streamed split, with what the index pass learnt of it."""

    path: str
    fmt: str  # csv | swift_json
    image_dir: str | None
    skip: frozenset  # lines the index pass rejected (skip_invalid): passed over unread
    first: int  # position of the file's first usable row among all train rows (-1: a split given by its own file)


@dataclass(frozen=True)
class StreamSplit:
    """Which rows of its sources a streamed split keeps, and how they are checked when yielded."""

    name: str
    cuts: tuple | None  # split_cuts over the train rows; None: every usable row of the sources
    seed: int
    skip_invalid: bool
    check_images: str


def _index_file(path: Path, fmt: str, image_dir, skip_invalid: bool, keys=None, seed=0) -> frozenset:
    """The index pass over one file: record and text checks and repeats, no image touched. Raises the first bad
    row, or returns the lines to skip; appends each usable row's split key to ``keys`` (train files)."""
    reject, usable = _Rejects(path, skip_invalid), 0
    for row in _rows(path, fmt, image_dir, reject, "none", exists=_anywhere):
        usable += 1
        if keys is not None:
            keys.append(split_key(seed, row.image_file))
    reject.finish(usable)  # warns once per file; a file without one usable row stops the build, as in read_splits
    return frozenset(reject.lines)


def plan_stream(inputs: dict, fmt: str, *, validation_ratio=0.05, test_ratio=0.05, split_seed=42,
                skip_invalid=False, check_images="verify") -> dict[str, tuple[StreamSplit, list[StreamSource]]]:
    """``{split: (StreamSplit, [StreamSource])}``: what :func:`stream_rows` needs to yield, one file at a time, the
    rows :func:`read_splits` would give. Reads every annotation file once, without opening an image, and keeps 8
    bytes per train row (its split key) plus, while a file is read, one entry per image for the repeat checks."""
    keys, sources = array("Q"), {}
    for split, entries in inputs.items():
        for entry in entries:
            path, images = entry if fmt == "csv" else (entry, None)
            path, first = Path(os.path.abspath(path)), len(keys) if split == "train" else -1
            skip = _index_file(path, fmt, images, skip_invalid, keys if split == "train" else None, split_seed)
            sources.setdefault(split, []).append(StreamSource(str(path), fmt, images, skip, first))
    cuts = split_cuts(keys, 0 if "validation" in inputs else validation_ratio, 0 if "test" in inputs else test_ratio)
    options = dict(seed=split_seed, skip_invalid=skip_invalid, check_images=check_images)
    carved = {"train": cuts if cuts != (None, None) else None, "test": cuts[0], "validation": cuts[1]}
    plan = {}
    for split in SPLITS:
        if split in inputs and split != "train":
            plan[split] = (StreamSplit(split, None, **options), sources[split])
        elif split == "train" or carved[split] is not None:  # a ratio of 0 means no such split
            plan[split] = (StreamSplit(split, carved["train"], **options), sources["train"])
    return plan


def stream_rows(source: StreamSource, split: StreamSplit):
    """The rows of ``split`` in one file, read as they are needed. Only a row of this split has its image looked up
    and checked (``check_images``), so a bad image stops the stream, or is skipped with ``skip_invalid`` (counted
    in a warning when the file is done), when its row comes up."""
    path = Path(source.path)
    reject = _Rejects(path, split.skip_invalid, track_repeats=False)  # repeats were the index pass's job
    locate = _locator(source.fmt, path, source.image_dir)
    records = _csv_records(path, reject, source.skip) if source.fmt == "csv" else \
        _swift_records(path, reject, source.skip)
    for position, (line, image_file, text) in enumerate(records, start=source.first):
        if split.cuts is not None and split_of(split_key(split.seed, image_file), position, split.cuts) != split.name:
            continue
        row = _check_row(reject, line, normalize_text(text), image_file, locate(image_file), split.check_images)
        if row:
            yield row
    reject.finish(None, require_rows=False)
