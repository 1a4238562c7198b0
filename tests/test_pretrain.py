"""The shipped Hindi reader (hindi_ocr/assets/reader, written out by ``python -m hindi_ocr.reader``) and the pieces of
its from-scratch training (``python -m hindi_ocr.pretrain``) that decide whether it learns at all."""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hindi_ocr.examples import fold
from hindi_ocr.pretrain import CtcHead, ctc_loss, reading_order

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
