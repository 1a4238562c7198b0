"""How a wide line becomes GOT's square input: exact pixels of the fold and letterbox layouts."""

import numpy as np
from PIL import Image, ImageDraw

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


def test_a_framed_line_is_padded_with_its_paper_not_its_frame():
    """A scan crop with a 1-pixel dark frame: letterbox and fold pad with the paper (grey 235), not the frame."""
    line = Image.new("RGB", (400, 40), (235, 235, 235))
    line.paste(Image.new("RGB", (300, 20), (40, 40, 40)), (50, 10))  # the ink
    ImageDraw.Draw(line).rectangle((0, 0, 399, 39), outline=(20, 20, 20))
    assert (np.asarray(letterbox(line, 200))[:80] == 235).all()  # 400x40 -> 200x20, centred
    assert (np.asarray(fold(line))[80:120, 132:] == 235).all()  # 3 pieces, the last 2 columns short
