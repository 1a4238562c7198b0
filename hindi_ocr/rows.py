"""Reading and checking line annotations: the seed's CSV (``image_file,text``) and ms-swift JSON/JSONL rows.

Rows are checked up front (text, image path, cheap image validity) so that a bad row fails the build with its
file and line number instead of crashing a training run hours later. Images are not decoded into memory here.

Streaming (:func:`plan_stream`, :func:`stream_rows`) splits that work in two: an index pass reads the annotation
files alone (text checks, the split order) and each image is looked up and checked only when its row is yielded,
so a run over millions of lines starts after one read of the CSV instead of one open of every image.
"""

from __future__ import annotations

import csv
import functools
import glob
import hashlib
import json
import logging
import os
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .text import normalize_text

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image_file", "text")
IMAGE_CHECKS = ("none", "header", "verify", "decode")
SPLITS = ("train", "validation", "test")
TOO_LARGE = "too large for a text line"  # start of check_image's answer for a decompression bomb


class InvalidRowError(ValueError):
    """A row (``line`` > 0) or a whole file (``line`` 0) that cannot be used; ``reason`` is a category."""

    def __init__(self, source, line: int, reason: str, detail: str):
        self.source, self.line, self.reason, self.detail = str(source), line, reason, detail
        super().__init__(f"{source}, line {line}: {detail}" if line else f"{source}: {detail}")


@dataclass(frozen=True)
class LineRow:
    image_path: str  # absolute path of the image file
    text: str  # NFC, stripped
    image_file: str  # the path as written in the annotation file
    source: str  # annotation file
    line: int  # 1-based line in the annotation file


class _Rejects:
    """Raises the first problem, or with ``skip_invalid`` counts problems (and their lines) and warns once per file;
    also remembers each image's first row, to tell a repeated row from a conflicting one (``track_repeats``: off
    when streaming rows, whose index pass did that)."""

    def __init__(self, source, skip: bool, track_repeats: bool = True):
        self.source, self.skip, self.counts, self.examples, self.lines = source, skip, Counter(), [], []
        self.first_row, self.repeats = ({} if track_repeats else None), []

    def __call__(self, line: int, reason: str, detail: str):
        error = InvalidRowError(self.source, line, reason, detail)
        if not self.skip:
            raise error
        self.counts[reason] += 1
        self.lines.append(line)
        if len(self.examples) < 5:
            self.examples.append(f"line {line}: {detail}")

    def finish(self, kept, require_rows: bool = True):
        if self.repeats:
            logger.warning("%s: %d rows repeat an earlier row (same image, same text) and are kept, so those lines "
                           "weigh more in training; lines %s", self.source, len(self.repeats),
                           ", ".join(map(str, self.repeats[:10])) + (" ..." if len(self.repeats) > 10 else ""))
        if self.counts:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common())
            logger.warning("%s: skipped %d invalid rows (%s); first: %s", self.source,
                           sum(self.counts.values()), reasons, "; ".join(self.examples))
        if require_rows and not kept:
            raise InvalidRowError(self.source, 0, "no_rows", "no usable rows")
        return kept


def check_image(path: str, mode: str = "verify") -> str | None:
    """Why the image is unusable, or None.

    ``none``: not opened (the path was found; a broken file fails when it is read); ``header``: the format is
    recognised; ``verify``: also PNG chunk CRCs (catches truncated PNGs without decoding) and the JPEG end marker;
    ``decode``: a full decode (slowest, catches everything).
    """
    if mode not in IMAGE_CHECKS:
        raise ValueError(f"check_images must be one of {IMAGE_CHECKS}, got {mode!r}")
    if mode == "none":
        return None
    try:
        with Image.open(path) as image:
            if mode == "decode":
                image.load()
            elif mode == "verify":
                image.verify()
                if image.format == "JPEG":
                    with open(path, "rb") as handle:
                        handle.seek(max(0, os.path.getsize(path) - 64))
                        if b"\xff\xd9" not in handle.read():
                            return "JPEG end marker missing (file truncated?)"
    except Image.DecompressionBombError as error:
        return (f"{TOO_LARGE}: {error} Downscale the image; the limit guards against "
                "decompression bombs and stays on")
    except Exception as error:  # noqa: BLE001 - Pillow's parsers raise many types on hostile bytes; all mean "unusable"
        return f"{type(error).__name__}: {error}"
    return None


def _control_character(text: str) -> str | None:
    """The first control character that is not whitespace (NUL, ESC, DEL, C1...), as ``U+XXXX at position N``."""
    for position, char in enumerate(text, 1):
        if unicodedata.category(char) == "Cc" and not char.isspace():
            return f"U+{ord(char):04X} at position {position}"
    return None


def _bad_bytes(fields: dict) -> str | None:
    """Describe the first undecodable byte (kept as a lone surrogate by ``surrogateescape``), if any."""
    for column, value in fields.items():
        for char in value or "":
            if "\udc80" <= char <= "\udcff":
                return (f"byte 0x{ord(char) - 0xDC00:02X} in column {column!r} is not valid UTF-8; "
                        "re-save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel)")
    return None


def _open_text(path: Path):
    """The file as UTF-8 text, read as it goes; undecodable bytes kept (``surrogateescape``) for :func:`_bad_bytes`."""
    with open(path, "rb") as raw:
        if raw.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise InvalidRowError(path, 1, "not_utf8", "is UTF-16 encoded; re-save it as UTF-8")
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _resolve_image(image_file: str, roots: list[str], exists=os.path.isfile):
    """First existing ``root/image_file`` as (path, None), else (None, (reason, detail)).

    A path that leaves every root (``../``, an absolute path elsewhere) is refused even if the file exists.
    ``exists=_anywhere`` (the streaming index pass) answers the first candidate without touching the disk.
    """
    relative = image_file.replace("\\", "/")  # Windows-made CSVs
    candidates = [os.path.normpath(os.path.join(root, relative)) for root in roots]
    inside = [c for c, root in zip(candidates, roots) if _inside(c, root)]
    where = " or ".join(roots)
    if not inside:
        return None, ("outside_image_dir",
                      f"image path {image_file!r} points outside the image folder {where}")
    found = next((c for c in inside if exists(c)), None)
    return (found, None) if found else (None, ("missing_image", f"image {image_file!r} not found in {where}"))


def _check_row(reject, line, text, image_file, located, check_images) -> LineRow | None:
    """``located`` is (path, None) or (None, (reason, detail)) from the caller's path lookup."""
    if not text:
        return reject(line, "empty_text", "text is empty or whitespace-only")
    control = _control_character(text)
    if control:
        return reject(line, "control_character", f"text has control character {control}; remove it (a "
                      "transcription never contains one: the file may be corrupt)")
    if not image_file:
        return reject(line, "missing_image", "image file name is empty")
    path, problem = located
    if path is None:
        return reject(line, *problem)
    problem = check_image(path, check_images)
    if problem:
        detail = problem if problem.startswith(TOO_LARGE) else f"unreadable or truncated ({problem})"
        return reject(line, "bad_image", f"image {path} is {detail}")
    row = LineRow(path, text, image_file, str(reject.source), line)
    if reject.first_row is None:
        return row
    first = reject.first_row.setdefault(path, row)
    if first is not row:
        if first.text != text:
            return reject(line, "conflicting_text", f"image {image_file!r} is also on line {first.line} with "
                          f"another text ({first.text!r} there, {text!r} here); keep the right one")
        reject.repeats.append(line)
    return row


def default_image_dir(csv_path) -> str:
    """The seed layout keeps images in ``output_images/`` beside the CSV; otherwise they sit beside it."""
    folder = os.path.dirname(os.path.abspath(csv_path))
    images = os.path.join(folder, "output_images")
    return images if os.path.isdir(images) else folder


def _csv_records(csv_path: Path, reject, skip=frozenset()):
    """(line, image_file, text) of each CSV record that passes the record-level checks, streamed from the file.

    ``skip``: lines to pass over unread (rejected by the streaming index pass).
    """
    with _open_text(csv_path) as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader, [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise InvalidRowError(csv_path, 1, "missing_column",
                                      f"missing column(s) {', '.join(map(repr, missing))}; "
                                      f"found columns {header}; expected a header line 'image_file,text'")
            end = reader.line_num
            for record in reader:
                line, end = end + 1, reader.line_num
                if not record or line in skip:  # a blank line, or one the index pass rejected
                    continue
                fields = dict(zip(header, record))
                if any(value.strip() for value in record[len(header):]):
                    reject(line, "extra_fields", f"{len(record)} fields but the header has {len(header)}; "
                           'put text that contains a comma in double quotes ("like, this")')
                    continue
                bad = _bad_bytes({c: fields.get(c) for c in REQUIRED_COLUMNS})
                if bad:
                    reject(line, "not_utf8", bad)
                    continue
                yield line, (fields.get("image_file") or "").strip(), fields.get("text") or ""
        except csv.Error as error:
            raise InvalidRowError(csv_path, reader.line_num, "bad_csv", f"malformed CSV: {error}") from None


def _swift_records(json_path: Path, reject, skip=frozenset()):
    """(line, image, response) of each ms-swift record that passes the record-level checks."""
    with _open_text(json_path) as handle:
        text = handle.read()
    for line, record in _json_records(text, json_path):
        if line in skip:
            continue
        if isinstance(record, json.JSONDecodeError):
            reject(line, "bad_record", f"invalid JSON: {record.msg} (column {record.colno})")
            continue
        try:
            response, images = _swift_fields(record)
        except KeyError as error:
            reject(line, "bad_record", error.args[0])
            continue
        bad = _bad_bytes({"response": response, "images": images[0]})
        if bad:
            reject(line, "not_utf8", bad)
            continue
        yield line, images[0].strip(), response


def _locator(fmt: str, path: Path, image_dir=None):
    """``locate(image_file, exists=...)`` for the rows of one file: (path, None) or (None, (reason, detail)).

    CSV: inside ``image_dir``, or ``output_images/`` beside the CSV and the CSV's folder. ms-swift: relative to the
    JSON file's folder (``../`` allowed) or absolute.
    """
    if fmt == "csv":
        roots = [os.path.abspath(image_dir)] if image_dir else [default_image_dir(path), str(path.parent)]
        return functools.partial(_resolve_image, roots=list(dict.fromkeys(roots)))

    def locate(image_file, exists=os.path.isfile):
        found = os.path.normpath(os.path.join(str(path.parent), image_file))
        return (found, None) if exists(found) else (None, ("missing_image", f"image {found} not found"))

    return locate


def _anywhere(path: str) -> bool:
    """``exists`` of the streaming index pass: images are not looked up until their row is read."""
    return True


def _rows(path: Path, fmt: str, image_dir, reject, check_images, exists=os.path.isfile, skip=frozenset()):
    """Checked rows of one annotation file, in file order."""
    locate = _locator(fmt, path, image_dir)
    records = _csv_records(path, reject, skip) if fmt == "csv" else _swift_records(path, reject, skip)
    for line, image_file, text in records:
        row = _check_row(reject, line, normalize_text(text), image_file, locate(image_file, exists=exists),
                         check_images)
        if row:
            yield row


def read_csv_rows(csv_path, image_dir=None, *, skip_invalid: bool = False, check_images: str = "verify"):
    """Checked rows of a CSV with ``image_file`` and ``text`` columns (extra columns are ignored).

    ``image_file`` is looked up in ``image_dir`` (default: :func:`default_image_dir`) and, when that was not
    given, also beside the CSV, so ``output_images/x.png`` and ``x.png`` both work. Paths may not leave those
    folders. A folder for ``csv_path`` means its ``data.csv``.
    """
    csv_path = Path(os.path.abspath(csv_path))
    if csv_path.is_dir():
        csv_path = csv_path / "data.csv"
    reject = _Rejects(csv_path, skip_invalid)
    return reject.finish(list(_rows(csv_path, "csv", image_dir, reject, check_images)))


def _json_records(text: str, path: Path):
    """(line, record) pairs of a JSON array or of JSON Lines; a broken array is a file-level error. The file is read
    whole (an array cannot be parsed in pieces): annotations are small next to their images."""
    body = text.lstrip()
    if not body.startswith("["):
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as error:
                    yield number, error
        return
    decoder, pos = json.JSONDecoder(), text.index("[") + 1
    try:
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos < len(text) and text[pos] == "]":
                return
            record, end = decoder.raw_decode(text, pos)
            yield text.count("\n", 0, pos) + 1, record
            pos = end
    except json.JSONDecodeError as error:
        raise InvalidRowError(path, error.lineno, "bad_json",
                              f"invalid JSON: {error.msg} (column {error.colno})") from None


def _swift_fields(record) -> tuple[str, list]:
    """(response, images) of an ms-swift row: ``query``/``response``, or ``messages`` with the answer."""
    if not isinstance(record, dict):
        raise KeyError(f"expected an object, got {type(record).__name__}")
    images = record.get("images")
    images = [images] if isinstance(images, str) else images
    if "response" in record:
        text = record["response"]
    elif isinstance(record.get("messages"), list):
        turns = [m.get("content") for m in record["messages"]
                 if isinstance(m, dict) and m.get("role") == "assistant"]
        text = turns[-1] if turns else None
    else:
        raise KeyError(f"missing key 'response' (found keys {sorted(record)})")
    if not isinstance(text, str):
        raise KeyError(f"the response must be a string, got {type(text).__name__}")
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
        raise KeyError(f"'images' must list exactly one image path, got {images!r}")
    return text, images


def read_swift_rows(json_path, *, skip_invalid: bool = False, check_images: str = "verify"):
    """Checked rows of an ms-swift file (JSON array or JSONL): ``{"query", "response", "images": [path]}``.

    Relative image paths are taken from the JSON file's folder (they may use ``../``); absolute ones as they
    are.
    """
    json_path = Path(os.path.abspath(json_path))
    reject = _Rejects(json_path, skip_invalid)
    return reject.finish(list(_rows(json_path, "swift_json", None, reject, check_images)))


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
                         f"validation_ratio={validation_ratio}")
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


def _split_files(data_files) -> dict[str, list[str]]:
    files = {str(split): [str(p) for p in paths] for split, paths in dict(data_files).items() if paths}
    unknown = set(files) - set(SPLITS)
    if unknown or "train" not in files:
        raise ValueError(f"data_files needs a 'train' entry and only the splits {SPLITS}; "
                         f"got {sorted(files)}")
    return files


def find_csv_inputs(data_dir=None, data_files=None, csv_file="data.csv", image_dir=None,
                    test_dir="TestSamples"):
    """``{split: [(csv_path, image_dir or None)]}`` for the seed layout.

    Relative ``csv_file``/``image_dir``/``test_dir`` are taken from ``data_dir`` (or the first train CSV's
    folder). ``csv_file`` may be a glob (``shards/part-*.csv``: every match, sorted, is a train file; each
    file's images are found beside it unless ``image_dir`` is given). ``image_dir`` applies to every CSV named
    by ``csv_file``/``data_files``. ``test_dir`` (default
    ``TestSamples``) becomes the test split when it exists, holds ``data.csv`` (or a single CSV) and
    ``data_files`` has no test entry; its images are found by :func:`default_image_dir`.
    """
    if data_files:
        files = _split_files(data_files)
        root = data_dir or os.path.dirname(files["train"][0])
    elif data_dir:
        path = os.path.join(data_dir, csv_file)
        paths = sorted(p for p in glob.glob(path) if os.path.isfile(p)) if glob.has_magic(csv_file) else [path]
        if not paths or not os.path.isfile(paths[0]):
            raise FileNotFoundError(f"{path} not found: the csv config reads {csv_file} (columns "
                                    "image_file,text) from data_dir; name another file with csv_file=... "
                                    "or data_files=...")
        files, root = {"train": paths}, data_dir
    else:
        raise ValueError("the csv config needs data_dir (a folder with data.csv and output_images/) "
                         "or data_files")
    images = os.path.join(root, image_dir) if image_dir else None
    if images and not os.path.isdir(images):
        raise FileNotFoundError(f"image_dir {images} is not a folder")
    inputs = {split: [(path, images) for path in paths] for split, paths in files.items()}
    folder = os.path.join(root, test_dir) if test_dir else None
    if "test" not in inputs and folder and os.path.isdir(folder):
        found = sorted(p for p in os.listdir(folder) if p.lower().endswith(".csv"))
        found = ["data.csv"] if "data.csv" in found else found
        if len(found) != 1:
            raise FileNotFoundError(f"test_dir {folder} should hold data.csv (found CSVs: {found}); "
                                    "pass test_dir='' to split the test set off the main CSV instead")
        inputs["test"] = [(os.path.join(folder, found[0]), None)]
    elif "test" not in inputs and folder and test_dir != "TestSamples":
        raise FileNotFoundError(f"test_dir {folder} is not a folder")
    return inputs


def find_json_inputs(data_dir=None, data_files=None, json_file=None) -> dict[str, list[str]]:
    """``{split: [json_path]}``: ``data_files``, else ``json_file`` in ``data_dir``, else the ``*.json`` /
    ``*.jsonl`` files there (``train``/``validation``/``test`` by name, or a single file of any name)."""
    if data_files:
        return _split_files(data_files)
    if not data_dir:
        raise ValueError("the swift_json config needs data_dir (a folder with the JSON/JSONL file) "
                         "or data_files")
    if json_file:
        path = os.path.join(data_dir, json_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"json_file {path} not found")
        return {"train": [path]}
    found = sorted(p for p in os.listdir(data_dir) if p.lower().endswith((".json", ".jsonl")))
    named = {os.path.splitext(p)[0].lower(): os.path.join(data_dir, p) for p in found}
    if "train" in named:
        return {split: [named[split]] for split in SPLITS if split in named}
    if len(found) == 1:
        return {"train": [os.path.join(data_dir, found[0])]}
    raise FileNotFoundError(f"cannot tell which JSON file in {data_dir} to read (found {found}); "
                            "set json_file=... or data_files={'train': ..., 'test': ...}")


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


def fingerprint(paths) -> str:
    """Size and mtime of the annotation files, so editing one rebuilds the cached dataset."""
    stats = []
    for path in paths:
        stat = os.stat(path)
        stats.append(f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(stats).encode()).hexdigest()[:16]


# --- streaming ------------------------------------------------------------------------------------------------

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
