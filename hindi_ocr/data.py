"""One entry point for training data: this repo's dataset builder, or any dataset ``datasets`` can load.

This repo's builder is instantiated as a class rather than loaded as a script: ``datasets`` 4 dropped loading
scripts, and the class path needs no ``trust_remote_code`` or module cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

BUILDER_DIR = Path(__file__).resolve().parent.parent / "dataset_builder"


def _is_this_builder(dataset_name: str) -> bool:
    """True for a path to this repo's dataset_builder folder (or its script), or for the bare default name."""
    path = Path(dataset_name)
    if path.is_file() and path.name == "dataset_builder.py":
        path = path.parent
    if path.is_dir():
        return (path / "dataset_builder.py").is_file() and path.resolve() == BUILDER_DIR
    return dataset_name.rstrip("/") in ("dataset_builder", "./dataset_builder")


def load_line_dataset(dataset_name: str = "./dataset_builder", config_name: str | None = None,
                      data_dir: str | None = None, cache_dir: str | None = None,
                      **config_kwargs) -> datasets.DatasetDict:
    """Splits with ``image``, ``text`` and ``image_file``.

    ``config_name`` defaults to ``csv`` when ``data_dir``/``data_files`` is given, else ``synthetic``;
    ``config_kwargs`` are that config's options (see dataset_builder/README.md). Anything else is passed to
    ``datasets.load_dataset`` (Hub ids, parquet folders...).
    """
    if _is_this_builder(dataset_name):
        from dataset_builder.dataset_builder import HindiLineOCR

        if data_dir is not None:
            data_dir = os.path.abspath(data_dir)
        builder = HindiLineOCR(config_name=config_name, data_dir=data_dir, cache_dir=cache_dir,
                               **config_kwargs)
        builder.download_and_prepare()
        return builder.as_dataset()
    return datasets.load_dataset(dataset_name, config_name, data_dir=data_dir, cache_dir=cache_dir,
                                 **config_kwargs)
