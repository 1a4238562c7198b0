"""Reading and checking line annotations: the seed's CSV (``image_file,text``) and ms-swift JSON/JSONL rows.

Rows are checked up front (text, image path, cheap image validity) so that a bad row fails the build with its
file and line number instead of crashing a training run hours later. Images are not decoded into memory here.
Elsewhere: which files to read (:mod:`.discovery`), the split (:mod:`.splits`), rows as a stream (:mod:`.streaming`)."""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .text import normalize_text, text_problem

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image_file", "text")
IMAGE_CHECKS = ("none", "header", "verify", "decode")
TOO_LARGE = "too large for a text line"  # start of check_image's answer for a decompression bomb


class InvalidRowError(ValueError):
    """A row (``line`` > 0) or a whole file (``line`` 0) that cannot be used; ``reason`` is a category."""

    def __init__(self, source, line: int, reason: str, detail: str, unit: str = "line"):
        self.source, self.line, self.reason, self.detail = str(source), line, reason, detail
        super().__init__(f"{source}, {unit} {line}: {detail}" if line else f"{source}: {detail}")


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

    unit = "line"  # of an annotation file; a dataset's rows are counted in rows

    def __call__(self, line: int, reason: str, detail: str):
        error = InvalidRowError(self.source, line, reason, detail, self.unit)
        if not self.skip:
            raise error
        self.counts[reason] += 1
        self.lines.append(line)
        if len(self.examples) < 5:
            self.examples.append(f"{self.unit} {line}: {detail}")

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
    problem = text_problem(text)
    if problem:
        return reject(line, *problem)
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
