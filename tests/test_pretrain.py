"""The shipped Hindi reader (hindi_ocr/assets/reader, written out by ``python -m hindi_ocr.reader``) and the pieces of
its from-scratch training (``python -m hindi_ocr.pretrain``) that decide whether it learns at all."""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hindi_ocr.examples import fold
from hindi_ocr import pretrain
from hindi_ocr.pretrain import CtcHead, column_frames, ctc_loss, reading_order

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("width", [60, 200, 430, 900, 2000])
def test_reading_order_follows_the_folded_line(width):
    """Each token's place in the CTC order must grow with the position along the line that the token shows."""
    height, side = 48, 8
    line = Image.new("RGB", (width, height), "white")
    folded = fold(line)
    pieces = max(1, round(math.sqrt(width / height)))
    piece_width = math.ceil(width / pieces)
    order = reading_order(line, side)
    assert sorted(order) == list(range(side * side))
    # the line position (x in the unfolded line) at the centre of each token of the folded, squared image
    positions = []
    for token in order:
        row, col = divmod(token, side)
        piece = min(pieces - 1, int((row + 0.5) / side * folded.height // height))
        positions.append(piece * piece_width + (col + 0.5) / side * piece_width)
    assert positions == sorted(positions), positions


def test_ctc_loss_reads_features_in_reading_order():
    """Features that spell the text in reading order cost less than the same features in row-major order."""
    side, text = 4, "कमल"
    chars = sorted(set(text))
    index = {c: i + 1 for i, c in enumerate(chars)}
    head = CtcHead(len(chars) + 1, len(chars))
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(len(chars) + 1) * 20)
        head.proj.bias.zero_()
    line = Image.new("RGB", (48 * 4, 48))  # folded into 2 pieces: rows 0-1 and 2-3 of the 4x4 tokens
    order = reading_order(line, side)
    spelled = torch.zeros(1, side * side, len(chars) + 1)
    spelled[0, :, 0] = 1  # blank everywhere ...
    for k, char in zip((0, 5, 10), text):  # ... except three tokens, in reading order
        spelled[0, order[k], 0] = 0
        spelled[0, order[k], index[char]] = 1
    good = ctc_loss(head, spelled, [order], [text], index)
    scrambled = ctc_loss(head, spelled, [list(range(side * side))[::-1]], [text], index)
    assert good.item() < 0.01 < scrambled.item()


def test_column_frames_follow_the_line_piece_by_piece():
    """Each frame averages one grid column over the rows of one piece: frames run along the unfolded line."""
    side, channels = 8, 2
    line = Image.new("RGB", (48 * 9, 48))  # folded into 3 pieces
    pieces = 3
    grid = torch.zeros(1, channels, side, side)
    for row in range(side):
        piece = min(pieces - 1, int((row + 0.5) * pieces / side))
        grid[0, 0, row, :] = piece * side + torch.arange(side)  # position along the line
        grid[0, 1, row, :] = row
    frames, lengths = column_frames(grid, [line])
    assert lengths.tolist() == [pieces * side] and frames.shape == (1, pieces * side, channels)
    assert frames[0, :, 0].tolist() == list(range(pieces * side))
    assert frames[0, :side, 1].tolist() == [1.0] * side  # rows 0-2 show the first piece


def test_training_text_is_sentences_and_words_without_the_heldout_lines():
    """Lines are 1-5 word windows of real text; no held-out sentence is trained on; no lone conjunct drills."""
    if not pretrain.CORPUS.is_dir():
        pytest.skip(f"needs {pretrain.CORPUS}")
    heldout = pretrain.heldout_texts(50)
    sources = pretrain.training_sources(heldout)
    assert set(sources) == {"sentences", "mixed", "words"}
    sentences = {" ".join(words) for words in sources["sentences"]}
    assert not [t for t in heldout if any(t in s for s in sentences)]
    rng = np.random.default_rng(0)
    drawn = [pretrain.draw_text(sources, rng) for _ in range(400)]
    counts = [len(t.split()) for t in drawn]
    assert min(counts) >= 1 and max(counts) <= 5 and np.mean(counts) > 2.5
    from_sentences = sum(any(t in s for s in sentences) for t in drawn[:100])
    assert 40 <= from_sentences <= 85  # about 60% of lines are sentence windows (short ones also match elsewhere)


def test_clean_lines_last_until_the_model_reads_them():
    assert pretrain.clean_share(5000, 3000, None) == 1.0
    assert pretrain.clean_share(1000, 3000, 1000) == 1.0
    assert pretrain.clean_share(2500, 3000, 1000) == pytest.approx(0.65)
    assert pretrain.clean_share(9000, 3000, 1000) == pytest.approx(0.3)


def test_a_stage_saves_a_plain_checkpoint_and_the_next_one_continues_it(tmp_path):
    """Two short stages of the real loop on a smaller shape: the second starts where the first saved."""
    small = ["--set", "text_hidden_size=64", "--set", "text_num_attention_heads=2", "--set",
             "text_intermediate_size=128", "--heldout_lines", "4", "--batch_size", "4", "--eval_every", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for extra in ([], ["--resume"]):
        done = subprocess.run([sys.executable, "-m", "hindi_ocr.pretrain", str(tmp_path), "--minutes", "0.05",
                               *small, *extra], cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    second = int(re.search(r"stage from step (\d+)", done.stdout).group(1))  # where the resumed stage began
    assert second > 0
    state = torch.load(tmp_path / "last" / "training_state.pt", weights_only=False)
    assert state["step"] > second and state["curve"][-1]["step"] == state["step"]
    from transformers import GotOcr2ForConditionalGeneration

    model = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "last")
    assert model.config.text_config.hidden_size == 64
    assert not [k for k in model.state_dict() if "ctc" in k.lower()]  # the CTC head is not in the checkpoint
