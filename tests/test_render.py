"""Rendering: HarfBuzz shaping, font discovery, determinism of synthetic lines."""

import unicodedata

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from hindi_ocr import render

EXPECTED_FAMILIES = {"Baloo 2", "Hind", "Kalam", "Mukta", "Noto Sans Devanagari", "Poppins", "Rajdhani",
                     "Teko"}


def face(name):
    (found,) = [f for f in render.devanagari_fonts() if f.name == name]
    return found


def ink(image: Image.Image) -> np.ndarray:
    """Ink strength 0..255 whatever the paper colour."""
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    return pixels.max() - pixels


def basic_rendering(text, font_face, size):
    """Pillow without shaping: glyphs in code-point order, as a broken renderer would draw them."""
    font = font_face.load(size, layout=ImageFont.Layout.BASIC)
    left, top, right, bottom = font.getbbox(text, anchor="ls")
    image = Image.new("L", (right - left + 24, bottom - top + 24), 255)
    ImageDraw.Draw(image).text((12 - left, 12 - top), text, font=font, fill=0, anchor="ls")
    return image


def best_match_x(image_ink, template_ink):
    """Left edge where the template fits best (least squared difference), and that relative residual."""
    ys, xs = np.nonzero(template_ink > 32)
    template = template_ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    height, width = template.shape
    best = (np.inf, -1)
    for y in range(image_ink.shape[0] - height + 1):
        for x in range(image_ink.shape[1] - width + 1):
            residual = float(((image_ink[y: y + height, x: x + width] - template) ** 2).sum())
            best = min(best, (residual, x))
    return best[1], best[0] / float((template ** 2).sum())


def ink_columns(image_ink):
    columns = np.nonzero((image_ink > 64).any(axis=0))[0]
    return columns.min(), columns.max()


@pytest.mark.parametrize("font_name", ["Hind-Regular", "NotoSansDevanagari-Regular"])
def test_i_matra_is_drawn_before_the_consonant(font_name):
    shaped = ink(render.render_line("कि", face(font_name), 48, padding=(12, 12)))
    unshaped = ink(basic_rendering("कि", face(font_name), 48))
    ka = ink(basic_rendering("क", face(font_name), 48))
    ka_width = ink_columns(ka)[1] - ink_columns(ka)[0] + 1

    # Unshaped: क is the leftmost glyph and the matra hangs off its right side.
    x, residual = best_match_x(unshaped, ka)
    assert residual < 0.05
    first, last = ink_columns(unshaped)
    assert x == first
    assert last - (x + ka_width) > 5

    # Shaped: the same क, but with the matra's stem to its left and nothing of note beyond its right edge.
    x, residual = best_match_x(shaped, ka)
    assert residual < 0.05
    first, last = ink_columns(shaped)
    assert x - first > 5
    assert last - (x + ka_width) <= 3


def test_shaping_changes_conjuncts():
    """क्ष is one ligature when shaped; unshaped it is क, a visible virama, then ष: much wider."""
    hind = face("Hind-Regular")
    shaped = render.render_line("क्ष", hind, 48, padding=(0, 0))
    unshaped = basic_rendering("क्ष", hind, 48)
    assert unshaped.width - 24 > 1.4 * shaped.width


def test_discovers_every_font_package_with_devanagari():
    fonts = render.devanagari_fonts()
    assert {f.family for f in fonts} == EXPECTED_FAMILIES
    assert len({f.name for f in fonts}) == len(fonts)
    some = {"Hind-Regular", "Teko-Bold", "NotoSansDevanagari-Black", "Baloo2-ExtraBold", "Poppins-Italic"}
    assert some <= {f.name for f in fonts}


def test_missing_glyph_check_rejects_a_latin_font():
    latin = ImageFont.load_default(24)  # Pillow's bundled Aileron: no Devanagari
    assert render.missing_glyphs(latin) == render.DEVANAGARI_SAMPLE
    assert render.missing_glyphs(latin, "Ab") == ""


def test_every_discovered_face_draws_real_devanagari_glyphs():
    """Each face draws क differently from its own .notdef box, and a whole word leaves ink."""
    for font_face in render.devanagari_fonts():
        font = font_face.load(24, layout=ImageFont.Layout.BASIC)
        notdef = np.asarray(font.getmask("\U0010fffd"))
        for letter in "कषज्ञ":
            glyph = np.asarray(font.getmask(letter))
            assert glyph.size and glyph.max() > 0, (font_face.name, letter)
            assert glyph.shape != notdef.shape or not np.array_equal(glyph, notdef), (font_face.name, letter)
        line = render.render_line("हिन्दी में लिखा", font_face, 24)
        assert ink(line).max() > 128, font_face.name


def test_fonts_option_selects_families_and_faces():
    chosen = render.devanagari_fonts("Hind, teko-bold")
    hind = ["Hind-Light", "Hind-Regular", "Hind-Medium", "Hind-SemiBold", "Hind-Bold"]
    assert [f.name for f in chosen] == hind + ["Teko-Bold"]
    assert {f.family for f in render.devanagari_fonts(["noto_sans_devanagari"])} == {"Noto Sans Devanagari"}
    with pytest.raises(ValueError, match="no Devanagari font named 'Arial'; installed families: Baloo 2, "):
        render.devanagari_fonts("Arial")


def test_fixed_height_shrinks_the_font_to_fit():
    image = render.render_line("शक्ति और ज्ञान", face("Kalam-Regular"), 80, height=40)
    assert image.height == 40
    rows = np.nonzero((ink(image) > 64).any(axis=1))[0]
    assert rows.min() > 0 and rows.max() < 39


def test_render_sample_is_deterministic_by_seed():
    fonts = render.devanagari_fonts()
    first, face_a = render.render_sample("नमस्ते दुनिया", 7, fonts)
    again, face_b = render.render_sample("नमस्ते दुनिया", 7, fonts)
    other, _ = render.render_sample("नमस्ते दुनिया", 8, fonts)
    assert face_a == face_b and render.png_bytes(first) == render.png_bytes(again)
    assert render.png_bytes(other) != render.png_bytes(first)
    assert first.height == 64 and first.mode == "L"


def test_augment_keeps_height_and_is_seeded():
    clean = render.render_line("परीक्षा", face("Mukta-Regular"), 32, height=48)
    noisy = [render.augment(clean, seed) for seed in range(6)]
    assert all(im.height == 48 for im in noisy)
    assert render.png_bytes(render.augment(clean, 3)) == render.png_bytes(noisy[3])
    assert any(render.png_bytes(im) != render.png_bytes(clean) for im in noisy)


def test_generated_lines_are_deterministic_hindi():
    lines = render.generate_lines(20, seed=5, min_words=2, max_words=4)
    assert lines == render.generate_lines(20, seed=5, min_words=2, max_words=4)
    assert lines != render.generate_lines(20, seed=6, min_words=2, max_words=4)
    for line in lines:
        assert line == unicodedata.normalize("NFC", line)
        assert 2 <= len(line.rstrip("।").split(" ")) <= 4
        assert all("\u0900" <= c <= "\u097f" for c in line.replace(" ", "")), line


def test_generate_lines_from_text_file(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\ufeffपहला\n\nदूसरा  \nपहला\nतीसरा\n\u0928\u093c\u0908\n", encoding="utf-8")
    lines = render.generate_lines(None, seed=1, text_file=path)
    assert sorted(lines) == sorted(["पहला", "दूसरा", "तीसरा", "\u0929\u0908"])
    assert lines == render.generate_lines(None, seed=1, text_file=path)
    assert render.generate_lines(2, seed=1, text_file=path) == lines[:2]
    with pytest.raises(ValueError, match="has 4 distinct non-empty lines; 5 were requested"):
        render.generate_lines(5, seed=1, text_file=path)


def test_font_of_reads_synthetic_image_file_names():
    assert render.font_of("train/000012__Hind-Regular.png") == "Hind-Regular"
    assert render.font_of("output_images/line_3.png") is None
