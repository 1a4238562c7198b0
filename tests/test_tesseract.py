"""Tesseract side by side (hindi_ocr/tesseract.py, hindi_ocr/compare.py, infer.py --compare_tesseract).

Tests that run the real binary are skipped where it is not installed (CI: apt-get install tesseract-ocr
tesseract-ocr-hin); the install-hint tests run everywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import infer
from hindi_ocr.inference import write_predictions
from hindi_ocr.render import devanagari_fonts, render_line, write_line_folder
from hindi_ocr.scoring import failure_scores, line_cer, score
from hindi_ocr.tesseract import INSTALL_HINT, clean, locate
from hindi_ocr.tiny import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
HINT = ("Install Tesseract and its Hindi model: `apt-get install tesseract-ocr tesseract-ocr-hin` (Debian/Ubuntu) "
        "or `brew install tesseract tesseract-lang` (macOS).")
LINES = ["नमस्ते दुनिया", "भारत एक विशाल देश है।", "किताब पढ़ो"]


@pytest.fixture(scope="module")
def lines_dir(tmp_path_factory):
    # the face in the image names, as synthetic lines carry it, so the report has its per-font section
    return write_line_folder(tmp_path_factory.mktemp("lines"), LINES, size=32, image_name="{}__Hind-Regular.png")


def test_install_hint_text():
    assert INSTALL_HINT == HINT


def test_missing_binary_from_flag(lines_dir, monkeypatch):
    monkeypatch.delenv("TESSERACT_CMD", raising=False)
    with pytest.raises(SystemExit) as err:  # before any model loads: the model path does not even exist
        infer.main(["--model_name_or_path", "/nonexistent/model", "--data_dir", str(lines_dir),
                    "--compare-tesseract", "--tesseract_cmd", "/nonexistent/bin/tesseract"])
    assert str(err.value.code) == ("Tesseract not found: tried --tesseract_cmd /nonexistent/bin/tesseract. " + HINT
                                   + " Or give the binary's path with --tesseract_cmd or TESSERACT_CMD.")


def test_missing_binary_from_env(monkeypatch):
    monkeypatch.setenv("TESSERACT_CMD", "/nonexistent/tesseract-5")
    with pytest.raises(SystemExit) as err:
        locate()
    assert str(err.value.code).startswith("Tesseract not found: tried TESSERACT_CMD=/nonexistent/tesseract-5. " + HINT)


@needs_tesseract
def test_missing_language_model(tmp_path, monkeypatch):
    monkeypatch.delenv("TESSERACT_CMD", raising=False)
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))  # a tessdata folder without hin.traineddata
    with pytest.raises(SystemExit) as err:
        locate()
    message = str(err.value.code)
    assert f"no hin.traineddata in {tmp_path}" in message and f"TESSDATA_PREFIX={tmp_path}" in message
    assert message.endswith(HINT)


def test_clean_output():
    assert clean("क\u093c\u093e\n\f") == "क़ा"  # NFC; the CLI's newline and form feed gone
    assert clean("दो  शब्द \n") == "दो  शब्द "  # only the trailing newline / form feed: scoring normalises spaces


def test_csv_output_has_a_tesseract_column(tmp_path):
    write_predictions(str(tmp_path / "p.csv"), [{"image": "a.png", "prediction": "क", "reference": "क",
                                                 "tesseract": "ख"}])
    assert (tmp_path / "p.csv").read_text(encoding="utf-8").splitlines() == [
        "image,prediction,reference,tesseract", "a.png,क,क,ख"]


@needs_tesseract
def test_reads_a_clean_rendered_line(tmp_path):
    face = devanagari_fonts("Hind-Regular")[0]
    text = "भारत एक विशाल देश है।"
    render_line(text, face, size=48).save(tmp_path / "line.png")
    (prediction,) = locate().read([str(tmp_path / "line.png")])
    assert line_cer(prediction, text) <= 0.05, prediction  # measured 0.0 with Tesseract 5.3.0


@needs_tesseract
def test_one_process_reads_lines_in_order(lines_dir):
    images = sorted(str(p) for p in (lines_dir / "output_images").iterdir())  # 0, 1, 2
    tesseract = locate()
    batch = tesseract.read([images[1], images[0], images[2], images[1]])
    assert batch == [tesseract.read([images[i]])[0] for i in (1, 0, 2, 1)]
    assert line_cer(batch[1], LINES[0]) <= 0.1 and line_cer(batch[0], LINES[1]) <= 0.1  # measured 0.0 (5.3.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@needs_tesseract
def test_infer_compare_tesseract_with_report(tiny, lines_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(REPO / "infer.py"), "--model_name_or_path", str(tiny), "--data_dir", str(lines_dir),
           "--compare_tesseract", "--report", str(tmp_path / "r.md"), "--output", str(tmp_path / "p.jsonl"),
           "--max_new_tokens", "8"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["reference"] for r in records] == LINES and all(isinstance(r["tesseract"], str) for r in records)
    ours = score([r["prediction"] for r in records], LINES)
    theirs = score([r["tesseract"] for r in records], LINES)
    assert theirs["cer"] <= 0.1  # clean 32 px Hind lines: measured 0.0 (5.3.0); lines read out of order score 1.09

    header = out.index("| engine | CER | WER | grapheme_CER | lines/s | n |")
    assert out[header + 1] == "|---|---|---|---|---|---|"
    got_row = re.fullmatch(rf"\| GOT-OCR2 \({re.escape(str(tiny))}\) \| {ours['cer']:.4f} \| {ours['wer']:.4f} \| "
                           rf"{ours['grapheme_cer']:.4f} \| [0-9.]+ \| 3 \|", out[header + 2])
    tess_row = re.fullmatch(rf"\| Tesseract \d+\.\d+\S* \(hin, psm 7\) \| {theirs['cer']:.4f} \| {theirs['wer']:.4f} "
                            rf"\| {theirs['grapheme_cer']:.4f} \| [0-9.]+ \| 3 \|", out[header + 3])
    assert got_row and tess_row, out[header:header + 4]
    assert out[header + 4].startswith("lines/s: reading only") and "model loading excluded" in out[header + 4]
    fails = failure_scores([r["prediction"] for r in records], LINES, [r["repetition"] for r in records])
    assert out[-1] == (f"CER {ours['cer']:.4f} WER {ours['wer']:.4f} grapheme_CER {ours['grapheme_cer']:.4f} "
                       f"median_CER {fails['median_cer']:.4f} catastrophic {fails['catastrophic_rate']:.4f} "
                       f"length_ratio {fails['length_ratio']:.3f} (n=3)")  # unchanged last line: our model's figures
    for name in ("r.md", "r.png", "r-tesseract.md", "r-tesseract.png"):
        assert f"report written to {tmp_path / name}" in out
    tess_md = (tmp_path / "r-tesseract.md").read_text(encoding="utf-8").splitlines()
    assert tess_md[0] == "# Error report: " + out[header + 3].split(" | ")[0].lstrip("| ")
    assert "| Hind-Regular | 3 | " + f"{theirs['cer']:.4f} |" in tess_md
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
