"""A data folder is input only (on Kaggle it is a read-only mount under /kaggle/input): building the dataset from it
and a training run on it write nothing there: no cache, lock, split file or log. The folder is made read-only, and
its listing (names, sizes, modification times, contents) is compared before and after. Root ignores the read-only
bits, so the listing is what holds the promise when the tests run as root."""

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
LINES = ["नमस्ते दुनिया", "भारत एक देश है", "किताब पढ़ो", "पानी गरम है", "घर बड़ा है", "सूरज निकला"]


def listing(folder: Path) -> dict[str, tuple]:
    entries = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        entries[path.relative_to(folder).as_posix()] = (stat.S_IMODE(info.st_mode), info.st_size, info.st_mtime_ns,
                                                        digest)
    return entries


def set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def readonly_data(tmp_path):
    data = write_line_folder(tmp_path / "input" / "data", LINES, size=20, test_samples=True)
    set_writable(data, False)
    yield data
    set_writable(data, True)  # so that pytest can clean up


def test_build_and_training_write_nothing_into_the_data_folder(readonly_data, tmp_path):
    before = listing(readonly_data)
    assert "data.csv" in before and "TestSamples/output_images/0.png" in before
    assert all(mode & 0o222 == 0 for mode, *_ in before.values())

    # Two working folders on the side, as on Kaggle (/kaggle/working): a cwd for the run and the output.
    built = datasets.load_dataset(str(REPO / "dataset_builder"), data_dir=str(readonly_data),
                                  cache_dir=str(tmp_path / "cache"), trust_remote_code=True)
    assert sorted(built) == ["test", "train", "validation"]
    assert sorted(built["test"]["text"]) == sorted(LINES)

    model = build_tiny_model(tmp_path / "tiny")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "cache2")}
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--model_name_or_path", str(model), "--data_dir", str(readonly_data),
         "--output_dir", str(tmp_path / "working" / "out"), "--max_steps", "2", "--eval_steps", "2",
         "--save_steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
         "--max_target_tokens", "16", "--dataset_options", "validation_ratio=0.25"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "working" / "out" / "test_results.json").is_file()
    assert any((tmp_path / "working" / "out" / "runs").iterdir())  # TensorBoard logs went to output_dir

    assert listing(readonly_data) == before
    assert not list(readonly_data.parent.glob("*.lock")) and sorted(p.name for p in readonly_data.parent.iterdir()) \
        == ["data"]
