"""bench/learning_curve.py from a clean checkout: held-out lines really are other text in other fonts, and a short
run writes its curve, plot and model (the numbers themselves are in BENCHMARKS.md)."""

import csv
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
learning_curve = pytest.importorskip("bench.learning_curve")

needs_corpus = pytest.mark.skipif(not learning_curve.CORPUS.is_dir(),
                                  reason=f"needs the corpus beside the repository ({learning_curve.CORPUS})")


def test_vocabulary_run_holds_out_whole_lines_and_draws_the_comparison(tmp_path):
    """--vocab: held-out lines are new sequences of the same words, and the stream never yields one of them."""
    from hindi_ocr.render import common_words, devanagari_fonts

    out = tmp_path / "vocab"
    learning_curve.main(["--size", "tiny", "--vocab", "12", "--min_words", "1", "--max_words", "2", "--clean",
                         "--train_fonts", "Hind-Regular", "--heldout_fonts", "Hind-Regular", "--max_steps", "2",
                         "--eval_every", "2", "--heldout_lines", "6", "--batch_size", "2", "--out", str(out),
                         "--threads", "1", "--workers", "0"])
    with open(out / "heldout" / "data.csv", encoding="utf-8") as f:
        heldout = [r["text"] for r in csv.DictReader(f)]
    words = set(common_words(12))
    assert len(set(heldout)) == 6 and all(set(t.split()) <= words for t in heldout)
    stream = learning_curve.RenderedLines(sorted(words), devanagari_fonts("Hind-Regular"), 0, 1, 2, 64,
                                          exclude=heldout, clean=True)
    seen = [row["text"] for row, _ in zip(stream, range(300))]
    assert not set(seen) & set(heldout) and len(set(seen)) > 20  # 156 possible lines, 6 of them held out
    learning_curve.main(["--compare", str(out), "--out", str(tmp_path / "levers.png")])
    assert (tmp_path / "levers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_corpus
def test_training_words_drop_conjunct_fragments():
    words = learning_curve.word_pool()
    assert len(words) > 40_000
    assert not [w for w in words if "\u200c" in w or "\u200d" in w or w.endswith("\u094d")]
    assert "किताब" in words


@needs_corpus
def test_short_run_writes_curve_plot_model_and_heldout_folder(tmp_path, capsys):
    from hindi_ocr.render import devanagari_fonts, font_of, read_text_lines

    out = tmp_path / "run"
    learning_curve.main(["--size", "tiny", "--minutes", "0.01", "--eval_every", "2", "--heldout_lines", "4",
                         "--batch_size", "2", "--out", str(out), "--threads", "1"])
    with open(out / "heldout" / "data.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    heldout_faces = {face.name for face in devanagari_fonts(learning_curve.HELDOUT_FAMILIES)}
    train_faces = {face.name for face in devanagari_fonts(learning_curve.TRAIN_FAMILIES)}
    assert {font_of(r["image_file"]) for r in rows} <= heldout_faces and not heldout_faces & train_faces
    sentences = " ".join(read_text_lines(learning_curve.CORPUS / "hi_commonvoice_sentences.txt"))
    assert all(word in sentences for r in rows for word in r["text"].split())  # Common Voice text

    train_rows, evals = learning_curve.read_curve(out)
    assert evals and evals[-1]["step"] >= 1
    # The curve's held-out CER is what infer.py reads with the saved model on the held-out folder (the last
    # evaluation comes at the step where the budget stopped training, with the weights that were saved).
    capsys.readouterr()
    infer = pytest.importorskip("infer")
    infer.main(["--model_name_or_path", str(out / "model"), "--data_dir", str(out / "heldout"),
                "--max_new_tokens", "48"])
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith(f"CER {evals[-1]['eval_cer']:.4f} "), (evals[-1], summary)
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "model" / "model.safetensors").is_file()
    assert '"line_layout": "squash"' in (out / "model" / "hindi_ocr.json").read_text()
