"""Finding the annotation files of each split: the seed's layout (data.csv beside output_images/, TestSamples/ as
the test split), CSV shards, ms-swift JSON/JSONL files or explicit data_files; and their fingerprint for the cache."""

from __future__ import annotations

import glob
import hashlib
import os

from .splits import SPLITS


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


def fingerprint(paths) -> str:
    """Size and mtime of the annotation files, so editing one rebuilds the cached dataset."""
    stats = []
    for path in paths:
        stat = os.stat(path)
        stats.append(f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(stats).encode()).hexdigest()[:16]
