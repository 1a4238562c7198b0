"""Reading and checking line annotations: the seed's CSV (``image_file,text``) and ms-swift JSON/JSONL rows.

Rows are checked up front (text, image path, cheap image validity) so that a bad row fails the build with its
file and line number instead of crashing a training run hours later. Images are not decoded into memory here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .text import normalize_text

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image_file", "text")
IMAGE_CHECKS = ("header", "verify", "decode")
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
    """Raises the first problem, or with ``skip_invalid`` counts problems and warns once per file; also remembers
    each image's first row, to tell a repeated row from a conflicting one."""

    def __init__(self, source, skip: bool):
        self.source, self.skip, self.counts, self.examples = source, skip, Counter(), []
        self.first_row, self.repeats = {}, []

    def __call__(self, line: int, reason: str, detail: str):
        error = InvalidRowError(self.source, line, reason, detail)
        if not self.skip:
            raise error
        self.counts[reason] += 1
        if len(self.examples) < 5:
            self.examples.append(f"line {line}: {detail}")

    def finish(self, kept: list[LineRow]) -> list[LineRow]:
        if self.repeats:
            logger.warning("%s: %d rows repeat an earlier row (same image, same text) and are kept, so those lines "
                           "weigh more in training; lines %s", self.source, len(self.repeats),
                           ", ".join(map(str, self.repeats[:10])) + (" ..." if len(self.repeats) > 10 else ""))
        if self.counts:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common())
            logger.warning("%s: skipped %d invalid rows (%s); first: %s", self.source,
                           sum(self.counts.values()), reasons, "; ".join(self.examples))
        if not kept:
            raise InvalidRowError(self.source, 0, "no_rows", "no usable rows")
        return kept


def check_image(path: str, mode: str = "verify") -> str | None:
    """Why the image is unusable, or None.

    ``header``: the format is recognised; ``verify``: also PNG chunk CRCs (catches truncated PNGs without
    decoding) and the JPEG end marker; ``decode``: a full decode (slowest, catches everything).
    """
    if mode not in IMAGE_CHECKS:
        raise ValueError(f"check_images must be one of {IMAGE_CHECKS}, got {mode!r}")
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


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidRowError(path, 1, "not_utf8", "is UTF-16 encoded; re-save it as UTF-8")
    return raw.decode("utf-8-sig", errors="surrogateescape")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _resolve_image(image_file: str, roots: list[str]):
    """First existing ``root/image_file`` as (path, None), else (None, (reason, detail)).

    A path that leaves every root (``../``, an absolute path elsewhere) is refused even if the file exists.
    """
    relative = image_file.replace("\\", "/")  # Windows-made CSVs
    candidates = [os.path.normpath(os.path.join(root, relative)) for root in roots]
    inside = [c for c, root in zip(candidates, roots) if _inside(c, root)]
    where = " or ".join(roots)
    if not inside:
        return None, ("outside_image_dir",
                      f"image path {image_file!r} points outside the image folder {where}")
    found = next((c for c in inside if os.path.isfile(c)), None)
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
    folder = str(csv_path.parent)
    roots = [os.path.abspath(image_dir)] if image_dir else [default_image_dir(csv_path), folder]
    roots = list(dict.fromkeys(roots))
    reader = csv.reader(io.StringIO(_decode(csv_path), newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InvalidRowError(csv_path, 1, "missing_column",
                                  f"missing column(s) {', '.join(map(repr, missing))}; "
                                  f"found columns {header}; expected a header line 'image_file,text'")
        rows, end = [], reader.line_num
        for record in reader:
            line, end = end + 1, reader.line_num
            if not record:  # blank line
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
            image_file = (fields.get("image_file") or "").strip()
            row = _check_row(reject, line, normalize_text(fields.get("text") or ""), image_file,
                             _resolve_image(image_file, roots), check_images)
            if row:
                rows.append(row)
    except csv.Error as error:
        raise InvalidRowError(csv_path, reader.line_num, "bad_csv", f"malformed CSV: {error}") from None
    return reject.finish(rows)


def _json_records(text: str, path: Path):
    """(line, record) pairs of a JSON array or of JSON Lines; a broken array is a file-level error."""
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
    folder = str(json_path.parent)
    rows = []
    for line, record in _json_records(_decode(json_path), json_path):
        if isinstance(record, json.JSONDecodeError):
            reject(line, "bad_record", f"invalid JSON: {record.msg} (column {record.colno})")
            continue
        try:
            text, images = _swift_fields(record)
        except KeyError as error:
            reject(line, "bad_record", error.args[0])
            continue
        bad = _bad_bytes({"response": text, "images": images[0]})
        if bad:
            reject(line, "not_utf8", bad)
            continue
        image = images[0].strip()
        path = os.path.normpath(os.path.join(folder, image))
        located = (path, None) if os.path.isfile(path) else (None, ("missing_image",
                                                                    f"image {path} not found"))
        row = _check_row(reject, line, normalize_text(text), image, located, check_images)
        if row:
            rows.append(row)
    return reject.finish(rows)


def split_rows(rows: list[LineRow], validation_ratio: float, test_ratio: float,
               seed: int) -> dict[str, list[LineRow]]:
    """Deterministic train/validation/test split: rows ordered by a seeded hash of ``image_file``.

    Hashing (rather than shuffling positions) keeps a line in its split when the file is reordered or grows.
    A non-zero ratio gets at least one row as long as one row is left for training.
    """
    for name, ratio in (("validation_ratio", validation_ratio), ("test_ratio", test_ratio)):
        if not 0 <= ratio < 1:
            raise ValueError(f"{name} must be in [0, 1), got {ratio}")
    n = len(rows)
    counts = [max(1, round(n * r)) if r > 0 else 0 for r in (test_ratio, validation_ratio)]
    if sum(counts) >= n:
        raise ValueError(f"{n} rows are too few for test_ratio={test_ratio} and "
                         f"validation_ratio={validation_ratio}")

    def key(i):
        return hashlib.sha256(f"{seed}\0{rows[i].image_file}".encode()).digest(), i

    order = sorted(range(n), key=key)
    n_test, n_val = counts
    split_of = {i: "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
                for rank, i in enumerate(order)}
    return {split: [row for i, row in enumerate(rows) if split_of[i] == split] for split in SPLITS}


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
    folder). ``image_dir`` applies to every CSV named by ``csv_file``/``data_files``. ``test_dir`` (default
    ``TestSamples``) becomes the test split when it exists, holds ``data.csv`` (or a single CSV) and
    ``data_files`` has no test entry; its images are found by :func:`default_image_dir`.
    """
    if data_files:
        files = _split_files(data_files)
        root = data_dir or os.path.dirname(files["train"][0])
    elif data_dir:
        path = os.path.join(data_dir, csv_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: the csv config reads {csv_file} (columns "
                                    "image_file,text) from data_dir; name another file with csv_file=... "
                                    "or data_files=...")
        files, root = {"train": [path]}, data_dir
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
