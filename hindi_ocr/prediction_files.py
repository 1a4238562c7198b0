"""Prediction files that grow while a long reading job runs and survive being killed: ``--output`` and ``--resume``.

One record per line image, written in input order, every key of the record a column (``image``, ``prediction``,
``reference`` when known, and whatever per-line fields reading adds). Why each format is safe to kill:

* ``.jsonl`` / ``.csv``: append-only. Each flush appends whole lines in one write and fsyncs; a kill can only leave
  a cut-off last line, which :meth:`PredictionFile.resume` drops (the file is truncated to its last complete
  record). A CSV header is written once, with the first flush.
* ``.parquet``: a parquet file cannot be appended to, and rewriting it at every flush costs O(lines) each time.
  While the job runs, each flush writes one part ``FILE.parts/part-NNNNNN.parquet`` (to a temporary name, then
  ``os.replace``: a part is there whole or not at all); the end joins the parts into ``FILE`` the same way and
  removes the folder. The bytes of ``FILE`` do not depend on where the parts were cut.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Sequence

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def check_output(path: str) -> None:
    if Path(path).suffix.lower() not in SUFFIXES:
        raise SystemExit(f"--output {path}: use a .jsonl, .csv or .parquet file name")


def _atomic_write(path: Path, data_writer) -> None:
    """``data_writer(temporary_path)`` then ``os.replace``: readers and a later resume see the old file or the new."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data_writer(partial)
    os.replace(partial, path)


class PredictionFile:
    """``--output FILE``: ``resume()`` or ``start()``, then ``append(records)`` per flush, then ``close()``."""

    def __init__(self, path: str):
        check_output(path)
        self.path = Path(path)
        self.kind = {".json": ".jsonl"}.get(self.path.suffix.lower(), self.path.suffix.lower())
        self.fields: list[str] | None = None  # CSV columns, fixed by the first record
        self.parts = self.path.with_name(self.path.name + ".parts")

    # -- starting ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        """A fresh file (an existing one is replaced, as infer.py always did without --resume)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.parts, ignore_errors=True)
        if self.kind == ".parquet":
            self.path.unlink(missing_ok=True)
            self.parts.mkdir()
        else:
            self.path.write_bytes(b"")

    def resume(self) -> list[dict]:
        """The complete records already written (a cut-off last line dropped from the file); [] if none."""
        if self.kind == ".parquet":
            return self._resume_parquet()
        if not self.path.is_file():
            self.start()
            return []
        data = self.path.read_bytes()
        records, end = [], 0
        header = None
        while True:
            newline = data.find(b"\n", end)
            if newline < 0:
                break
            text = data[end:newline].decode("utf-8", errors="replace")
            if self.kind == ".csv" and header is None:
                header = next(csv.reader([text]))
            else:
                try:
                    records.append(self._parse(text, header))
                except ValueError:
                    break  # garbage after the last good record: dropped below
            end = newline + 1
        if end < len(data):
            with self.path.open("r+b") as f:
                f.truncate(end)
        if self.kind == ".csv":
            self.fields = header
        return records

    def _parse(self, text: str, header) -> dict:
        if self.kind == ".csv":
            values = next(csv.reader([text]))
            if len(values) != len(header):
                raise ValueError("cut-off row")
            return dict(zip(header, values))
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError("not a record")
        return record

    def _resume_parquet(self) -> list[dict]:
        if self.path.is_file():
            if self.parts.is_dir():  # killed after the final join, before the parts were removed: FILE has them all
                shutil.rmtree(self.parts)
            rows = _read_rows(self.path)
            self.parts.mkdir()
            self._write_part(rows, 0)  # go on from parts; FILE comes back whole at close()
            self.path.unlink()
            return rows
        if not self.parts.is_dir():
            self.start()
            return []
        for stale in self.parts.glob(".*.tmp"):  # a part whose write was cut off: never renamed, never counted
            stale.unlink()
        return [row for part in self._part_files() for row in _read_rows(part)]

    def keep(self, count: int) -> None:
        """Drop every record after the first ``count`` (resume restarts at a batch boundary)."""
        if self.kind == ".parquet":
            rows = [row for part in self._part_files() for row in _read_rows(part)][:count]
            for part in self._part_files():
                part.unlink()
            if rows:
                self._write_part(rows, 0)
            return
        data = self.path.read_bytes()
        end, skip = 0, count + (1 if self.kind == ".csv" and data else 0)
        for _ in range(skip):
            end = data.index(b"\n", end) + 1
        with self.path.open("r+b") as f:
            f.truncate(end)

    # -- writing ----------------------------------------------------------------------------------------------
    def append(self, records: Sequence[dict]) -> None:
        if not records:
            return
        if self.kind == ".parquet":
            self._write_part(records, len(self._part_files()))
            return
        if self.kind == ".csv":
            text = self._csv_rows(records)
        else:
            text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        with self.path.open("ab") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def _csv_rows(self, records: Sequence[dict]) -> str:
        out = io.StringIO(newline="")
        header = self.fields is None
        if header:
            self.fields = list(dict.fromkeys(key for record in records for key in record))
        writer = csv.DictWriter(out, fieldnames=self.fields, lineterminator="\r\n")
        if header:
            writer.writeheader()
        extra = sorted(set().union(*records) - set(self.fields))
        if extra:
            raise SystemExit(f"--output {self.path}: a record has field(s) {', '.join(extra)} that the CSV header "
                             f"({', '.join(self.fields)}) lacks; write .jsonl or .parquet, which keep every field")
        writer.writerows(records)
        return out.getvalue()

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def _write_part(self, records: Sequence[dict], index: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(list(records))
        _atomic_write(self.parts / f"part-{index:06d}.parquet", lambda tmp: pq.write_table(table, tmp))

    def close(self) -> None:
        """Parquet: join the parts into FILE (atomically) and remove them. Text formats are complete already."""
        if self.kind != ".parquet":
            return
        table = parquet_table([row for part in self._part_files() for row in _read_rows(part)])
        import pyarrow.parquet as pq

        _atomic_write(self.path, lambda tmp: pq.write_table(table, tmp))
        shutil.rmtree(self.parts)


def _read_rows(part: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(part).to_pylist()


def parquet_table(records: Sequence[dict]):
    """One table for all records: columns in order of first appearance, a field missing from a record is null."""
    import pyarrow as pa

    fields = list(dict.fromkeys(key for record in records for key in record))
    return pa.Table.from_pylist([{key: record.get(key) for key in fields} for record in records])


def write_all(path: str, records: Sequence[dict]) -> None:
    """A whole prediction file at once, in any of the formats."""
    out = PredictionFile(path)
    out.start()
    if out.kind == ".csv":  # the CSV columns of every record, not just the first one's
        out.fields = list(dict.fromkeys(key for record in records for key in record))
        records = list(records)
        header = io.StringIO(newline="")
        csv.DictWriter(header, fieldnames=out.fields, lineterminator="\r\n").writeheader()
        out.path.write_text(header.getvalue(), encoding="utf-8", newline="")
    out.append(records)
    out.close()
