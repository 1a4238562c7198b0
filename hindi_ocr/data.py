"""One entry point for training data: this repo's dataset builder, or any dataset ``datasets`` can load.

This repo's builder is instantiated as a class rather than loaded as a script: ``datasets`` 4 dropped loading
scripts, and the class path needs no ``trust_remote_code`` or module cache.

``streaming=True`` gives ``IterableDataset`` splits (nothing is written to the cache; rows are read as they are
used). A stream has no length and cannot be indexed: :func:`first_rows` and :func:`num_rows` work on both kinds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
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
                      data_dir: str | None = None, cache_dir: str | None = None, streaming: bool = False,
                      check_texts: bool = False, **config_kwargs
                      ) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """Splits with ``image``, ``text`` and ``image_file``.

    ``config_name`` defaults to ``csv`` when ``data_dir``/``data_files`` is given, else ``synthetic``;
    ``config_kwargs`` are that config's options (see dataset_builder/README.md). Anything else is passed to
    ``datasets.load_dataset`` (Hub ids, parquet folders...). ``streaming``: ``IterableDataset`` splits.
    ``check_texts`` (training): such a dataset's texts get the builder's text checks (:func:`checked_texts`), and
    ``skip_invalid`` skips the rows that fail them; reading takes any text as a reference.
    """
    if _is_this_builder(dataset_name):
        HindiLineOCR = builder_class()
        if data_dir is not None:
            data_dir = os.path.abspath(data_dir)
        builder = HindiLineOCR(config_name=config_name, data_dir=data_dir, cache_dir=cache_dir,
                               **config_kwargs)
        if streaming:
            return builder.as_streaming_dataset()
        builder.download_and_prepare()
        return builder.as_dataset()
    skip_invalid = bool(config_kwargs.pop("skip_invalid", False))
    splits = datasets.load_dataset(dataset_name, config_name, data_dir=data_dir, cache_dir=cache_dir,
                                   streaming=streaming, **config_kwargs)
    if check_texts and isinstance(splits, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        for name in list(splits):
            splits[name] = checked_texts(splits[name], f"{dataset_name} ({name} split)", skip_invalid)
    return splits


def checked_texts(split, source: str, skip_invalid: bool = False):
    """A dataset the builder did not read (a Hub dataset) held to the builder's text rules
    (:func:`hindi_ocr.text.text_problem`): a bad row stops the run naming its row, or is skipped with
    ``skip_invalid`` (counted in the log). A stream's rows are checked as they are read."""
    from .rows import _Rejects
    from .text import normalize_text, text_problem

    if "text" not in (split.column_names or []):
        return split
    reject = _Rejects(source, skip_invalid, track_repeats=False)
    reject.unit = "row"

    def usable(text, index: int) -> bool:
        problem = text_problem(normalize_text(text) if isinstance(text, str) else "")
        if problem:
            reject(index + 1, *problem)
        return problem is None

    if isinstance(split, datasets.IterableDataset):
        # datasets 3.6 yields a filtered stream's images undecoded (dicts of bytes); a map after the filter decodes
        # them again, so the collator gets PIL images as from an unfiltered stream
        return split.filter(usable, input_columns="text", with_indices=True).map(lambda row: row)
    kept = [i for i, text in enumerate(split["text"]) if usable(text, i)]
    reject.finish(kept, require_rows=False)
    return split if len(kept) == len(split) else split.select(kept)


def builder_class() -> type[datasets.GeneratorBasedBuilder]:
    """This repo's ``HindiLineOCR``, imported from a copy of dataset_builder.py in the datasets modules cache.

    ``datasets`` takes a lock beside the folder two levels above a builder's source file, because it expects a
    script in its own cache (``<modules>/<name>/<hash>/script.py``). Imported from the checkout, that lock would be
    an empty ``<checkout>.lock`` left beside the repository; from the cache copy it stays in the cache.
    """
    code = (BUILDER_DIR / "dataset_builder.py").read_bytes()
    digest = hashlib.sha256(code).hexdigest()[:16]
    name = f"hindi_ocr_line_dataset_{digest}"
    if name not in sys.modules:
        script = Path(datasets.config.HF_MODULES_CACHE) / "hindi_ocr_line_dataset" / digest / "dataset_builder.py"
        if not script.is_file() or script.read_bytes() != code:
            script.parent.mkdir(parents=True, exist_ok=True)
            partial = script.with_name(f"{script.name}.{os.getpid()}.tmp")
            partial.write_bytes(code)
            os.replace(partial, script)  # atomic: concurrent processes (DDP ranks) never read half a file
        spec = importlib.util.spec_from_file_location(name, script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].HindiLineOCR


def num_rows(split) -> int | None:
    """Rows in a split; None for a stream, whose length is known only once it has been read to the end."""
    return None if isinstance(split, datasets.IterableDataset) else len(split)


def first_rows(split, n: int):
    """The first ``n`` rows, of the same kind: ``take`` on a stream, ``select`` on a Dataset."""
    if isinstance(split, datasets.IterableDataset):
        return split.take(n)
    return split.select(range(min(n, len(split))))


def select_samples(datasets, data_args):
    """Apply --max_{train,eval,test}_samples: the first N rows of each split (of a stream too), for quick runs."""
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
              "test": data_args.max_test_samples}
    for split, limit in limits.items():
        if limit is not None and split in datasets:
            datasets[split] = first_rows(datasets[split], limit)
    return datasets


def single_shard(stream: datasets.IterableDataset) -> datasets.IterableDataset:
    """The stream as one shard, for data-parallel training.

    accelerate hands the shards (files) of a multi-shard stream out to the processes, which then run out of lines
    at different steps and fall out of step with each other. A one-shard stream is split batch by batch instead
    (accelerate's IterableDatasetShard): every process reads the same shuffled stream (rows and image checks; the
    images are decoded by every process) and keeps its slice of each global batch, the last one padded from the
    first, so all processes run the same steps and each line is used once per pass.
    """
    if stream.features is None:  # a source that does not declare its columns: rows pass through as read
        return datasets.IterableDataset.from_generator(_yield_from, gen_kwargs={"stream": stream})
    return datasets.IterableDataset.from_generator(_yield_from, gen_kwargs={"stream": stream.decode(False)},
                                                   features=stream.features)


def _yield_from(stream):
    yield from stream


def in_memory(split) -> datasets.Dataset:
    """A streamed split read into a Dataset (images kept as their paths or bytes, undecoded): a data-parallel
    evaluation must know where a split ends to count each line once, which a stream cannot say."""
    if not isinstance(split, datasets.IterableDataset):
        return split
    if split.features is None:
        return datasets.Dataset.from_list(list(split))
    return datasets.Dataset.from_list(list(split.decode(False)), features=split.features)
