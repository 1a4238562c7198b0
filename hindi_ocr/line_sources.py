"""Lines to read from a dataset (a Hub id, a parquet folder, this repo's builder), as train.py takes one:
``infer.py --dataset_name NAME [--dataset_config C] [--split test] [--streaming]``.

The dataset is loaded by :func:`hindi_ocr.data.load_line_dataset`, the same call as training. Images stay
undecoded (their bytes or path) until the process whose share holds them reads them, so every process can walk
the whole input (a stream too) and decode only its own lines. A row's id is its ``image_file`` when the dataset
has one (this repo's builder and published datasets do), else ``SPLIT/ROW``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Iterator

from .inference import Line


@dataclass
class RowImage:
    """A dataset row's image as ``datasets`` stores it undecoded: ``{"bytes": ..., "path": ...}``."""

    value: dict
    row: str  # names the row in errors

    def open(self):
        from PIL import Image

        data, path = self.value.get("bytes"), self.value.get("path")
        try:
            image = Image.open(io.BytesIO(data) if data else path)
            image.load()
        except Exception as err:  # noqa: BLE001 - any unreadable image: name the row
            raise SystemExit(f"{self.row}: not a readable image ({type(err).__name__}: {err})") from None
        return image


def load_split(dataset_name: str, config: str | None, split: str, streaming: bool, options: dict | None = None):
    """One split, images undecoded; a clear error for a missing split or a dataset without ``image``."""
    import datasets

    from .data import load_line_dataset

    try:
        splits = load_line_dataset(dataset_name, config, streaming=streaming, **(options or {}))
    except FileNotFoundError as err:
        raise SystemExit(f"--dataset_name {dataset_name}: {err}") from None
    if split not in splits:
        raise SystemExit(f"--split {split}: {dataset_name} has the splits {', '.join(splits)}; choose one")
    data = splits[split]
    if data.features is not None and "image" not in data.features:
        raise SystemExit(f"--dataset_name {dataset_name}: no `image` column (it has {', '.join(data.features)}); "
                         "infer.py reads the `image` column and takes `text` as the reference")
    if isinstance(data, datasets.IterableDataset):
        return data.decode(False)
    return data.cast_column("image", datasets.Image(decode=False))


def dataset_lines(data, split: str) -> Iterator[Line]:
    """Lines of a loaded split in order, each image opened only when read."""
    for number, row in enumerate(data):
        name = row.get("image_file") or f"{split}/{number}"
        reference = row.get("text")
        yield Line(name, reference, source=RowImage(row["image"], f"--split {split} row {number} ({name})"))


def num_lines(data) -> int | None:
    """Rows of a split; for a stream the count its dataset card declares, if any (the progress bar's total)."""
    import datasets

    if not isinstance(data, datasets.IterableDataset):
        return len(data)
    info = data.info.splits and data.info.splits.get(data.split) if data.split else None
    return info.num_examples if info else None
