"""How a wide line becomes GOT's square input: exact pixels of the fold and letterbox layouts."""

import numpy as np
from PIL import Image

from hindi_ocr.examples import fold, letterbox


def striped_line(width: int, height: int) -> Image.Image:
    """Each column a different grey (column index mod 200), on paper-white top and bottom rows."""
    pixels = np.tile((np.arange(width) % 200).astype(np.uint8), (height, 1))
    pixels[0, :] = pixels[-1, :] = 250
    return Image.fromarray(pixels).convert("RGB")


def test_fold_stacks_pieces_in_reading_order():
    line = striped_line(400, 40)  # 10:1 -> round(sqrt(10)) = 3 pieces of ceil(400 / 3) = 134 columns
    folded = fold(line)
    assert folded.size == (134, 120)
    got, src = np.asarray(folded), np.asarray(line)
    assert np.array_equal(got[0:40, :], src[:, 0:134])
    assert np.array_equal(got[40:80, :], src[:, 134:268])
    assert np.array_equal(got[80:120, :132], src[:, 268:400])
    assert (got[80:120, 132:] == 250).all()  # the last piece is 2 columns short: paper colour


def test_fold_leaves_a_short_line_alone():
    line = striped_line(60, 40)  # 1.5:1 -> one piece
    assert np.array_equal(np.asarray(fold(line)), np.asarray(line))


def test_letterbox_pads_with_paper_colour():
    boxed = np.asarray(letterbox(striped_line(400, 40), 200))
    assert boxed.shape == (200, 200, 3)
    assert (boxed[:80] == 250).all() and (boxed[120:] == 250).all()  # 400x40 -> 200x20, centred
