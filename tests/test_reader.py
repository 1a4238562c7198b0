"""The Hindi reader shipped in hindi_ocr/assets/reader: written out by ``python -m hindi_ocr.reader``, it loads with
infer.py like any model and reads lines of text and faces it never trained on (inference only: a minute at most)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import infer
from hindi_ocr import pretrain
from hindi_ocr.reader import ASSETS

REPO = Path(__file__).resolve().parent.parent
# Measured 2026-12-04: CER 0.126 on these 40 lines (0.1375 on the card's 200). The bound leaves room for other
# Pillow/raqm builds; the reader with its weights shuffled (bench/mutations.py) reads nothing (CER ~1).
CER_BOUND = 0.25
LINES = 40


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    out = tmp_path_factory.mktemp("reader") / "hindi-reader"
    done = subprocess.run([sys.executable, "-m", "hindi_ocr.reader", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote the Hindi reader to {out}" in done.stdout
    return out


def heldout_folder(folder: Path) -> list[str]:
    """Lines the reader never trained on, in faces it never trained on (rendered here, fresh)."""
    return pretrain.write_heldout_folder(folder, LINES, seed=5)


def test_the_reader_is_a_plain_got_ocr2_checkpoint_with_its_card(reader):
    config = json.loads((reader / "config.json").read_text())
    assert config["architectures"] == ["GotOcr2ForConditionalGeneration"]
    assert json.loads((reader / "hindi_ocr.json").read_text())["line_layout"] == "fold"
    card = (reader / "README.md").read_text(encoding="utf-8")
    assert "python -m hindi_ocr.pretrain" in card and "Mukta" in card
    assert (ASSETS / "model.safetensors").stat().st_size <= 12 * 2**20


def test_the_reader_reads_heldout_lines_in_heldout_faces(reader, tmp_path):
    texts = heldout_folder(tmp_path / "lines")
    out = tmp_path / "preds.jsonl"
    assert infer.main(["--model_name_or_path", str(reader), "--data_dir", str(tmp_path / "lines"),
                       "--output", str(out), "--batch_size", "20"]) in (0, None)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["reference"] for r in rows] == texts
    cer = sum(edit_distance(r["prediction"], r["reference"]) for r in rows) / sum(len(t) for t in texts)
    print(f"reader CER on {len(rows)} held-out lines: {cer:.4f}")
    assert cer <= CER_BOUND, (cer, [(r["reference"], r["prediction"]) for r in rows[:5]])


def test_the_reader_refuses_a_folder_that_holds_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "hindi_ocr.reader", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "already holds files" in done.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_demo_reads_with_the_reader_when_no_model_is_named(reader, tmp_path):
    """``python -m hindi_ocr.demo`` with no model serves the reader (written once into the cache) and reads a line
    exactly as infer.py reads it with ``python -m hindi_ocr.reader``'s folder."""
    gradio_client = pytest.importorskip("gradio_client", reason='the demo extra is not installed')
    from demo_helpers import infer_predictions, local_env, start_demo, stop

    texts = heldout_folder(tmp_path / "lines")
    image = tmp_path / "lines" / "000.png"
    env = local_env(HINDI_OCR_CACHE=str(tmp_path / "cache"))
    expected = infer_predictions(["--model_name_or_path", str(reader)], [image], tmp_path / "infer.jsonl", env=env)
    process, url = start_demo(["-m", "hindi_ocr.demo"], tmp_path / "demo.log", env=env)
    try:
        client = gradio_client.Client(url, verbose=False)
        prediction = client.predict([gradio_client.handle_file(str(image))], texts[0], api_name="/read")[0]
    finally:
        stop(process)
    assert prediction == expected["000.png"] and edit_distance(prediction, texts[0]) < len(texts[0])
    cached = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len(cached) == 1 and cached[0].startswith("reader-"), cached
