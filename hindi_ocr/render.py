"""Synthetic Hindi text lines: Devanagari fonts from PyPI, shaped rendering, mild scanner-like noise.

Devanagari needs a shaping engine: with Pillow's BASIC layout ``कि`` comes out with the i-matra after the
consonant, which is not how anyone writes it. Everything here draws with ``ImageFont.Layout.RAQM`` (HarfBuzz).
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

from .text import normalize_text

logger = logging.getLogger(__name__)

# Fixed list (the fonts setup.cfg installs) rather than every installed fontpkg: a seed must keep meaning the
# same images when someone installs one more font package.
FONT_PACKAGES = (
    "fontpkg_noto_sans_devanagari",
    "fontpkg_hind",
    "fontpkg_mukta",
    "fontpkg_kalam",
    "fontpkg_baloo_2",
    "fontpkg_poppins",
    "fontpkg_rajdhani",
    "fontpkg_teko",
)
# Letters, vowel signs and marks a font must have to be used for Hindi.
DEVANAGARI_SAMPLE = "अआइईउऊएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसहािीुूृेैोौंँः़्।"
_MISSING = "\U0010fffd"  # a private-use code point no font maps: draws .notdef
_DEVANAGARI_WORD = re.compile(r"^[\u0900-\u097f]+$")
_FONT_IN_NAME = re.compile(r"__([^/\\]+)\.png$")


@dataclass(frozen=True)
class FontFace:
    """One drawable style: a static font file, or a named instance (``Bold``...) of a variable font."""

    name: str  # file-name-safe, e.g. "Hind-Regular", "Teko-Bold"; ends up in synthetic image_file names
    family: str
    path: Path
    variation: str | None = None

    def load(self, size: int, layout=ImageFont.Layout.RAQM) -> ImageFont.FreeTypeFont:
        return _load_font(str(self.path), self.variation, int(size), layout)


@functools.lru_cache(maxsize=1024)
def _load_font(path: str, variation: str | None, size: int, layout) -> ImageFont.FreeTypeFont:
    font = ImageFont.truetype(path, size, layout_engine=layout)
    if variation:
        font.set_variation_by_name(variation)
    return font


def missing_glyphs(font: ImageFont.FreeTypeFont, chars: str = DEVANAGARI_SAMPLE) -> str:
    """Characters the font would draw as .notdef (a box or nothing), compared with a known-missing one."""
    font = font.font_variant(layout_engine=ImageFont.Layout.BASIC)  # a glyph per code point, no dotted circle

    def drawn(char):
        mask = font.getmask(char)
        return mask.size, bytes(mask)

    notdef = drawn(_MISSING)
    return "".join(c for c, glyph in ((c, drawn(c)) for c in chars) if glyph == notdef or not any(glyph[1]))


@functools.lru_cache(maxsize=None)
def _all_faces() -> tuple[FontFace, ...]:
    faces = []
    for package in FONT_PACKAGES:
        try:
            root = importlib.resources.files(package)
        except ModuleNotFoundError:
            logger.warning("font package %s is not installed; its fonts are skipped", package)
            continue
        meta = json.loads((root / "metadata.json").read_text(encoding="utf-8"))
        for entry in meta["files"]:
            path = Path(str(root / entry["path"]))
            font = ImageFont.truetype(str(path), 16, layout_engine=ImageFont.Layout.RAQM)
            lacking = missing_glyphs(font)
            if lacking:
                logger.warning("skipping %s: no glyphs for %s", path.name, lacking)
                continue
            if entry.get("variable"):
                family = meta["family"].replace(" ", "")
                for instance in font.get_variation_names():
                    instance = instance.decode() if isinstance(instance, bytes) else instance
                    faces.append(FontFace(f"{family}-{instance}", meta["family"], path, instance))
            else:
                faces.append(FontFace(path.stem, meta["family"], path))
    return tuple(faces)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def devanagari_fonts(names=None) -> list[FontFace]:
    """Faces of the installed PyPI fonts that have every Devanagari glyph we test for.

    ``names`` (a list or a comma-separated string) keeps only the given families ("Hind",
    "noto_sans_devanagari") or faces ("Teko-Bold"); an unknown name is an error that lists the families.
    """
    faces = list(_all_faces())
    if not names:
        return faces
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    chosen = []
    for name in names:
        match = [f for f in faces if _key(name) in (_key(f.family), _key(f.name))]
        if not match:
            families = sorted({f.family for f in faces})
            raise ValueError(f"no Devanagari font named {name!r}; installed families: {', '.join(families)}")
        chosen += [f for f in match if f not in chosen]
    return chosen


def font_of(image_file: str) -> str | None:
    """Face named in a synthetic image_file: ``train/000012__Hind-Regular.png`` -> ``Hind-Regular``."""
    match = _FONT_IN_NAME.search(image_file)
    return match.group(1) if match else None


def _as_face(font) -> FontFace:
    if isinstance(font, FontFace):
        return font
    path = Path(font)
    return FontFace(path.stem, path.stem, path)


def render_line(text: str, font, size: int = 32, *, height: int | None = None, padding=(12, 6),
                ink: int = 0, paper: int = 255, rng=None) -> Image.Image:
    """Draw one line (grey-scale) with HarfBuzz shaping, cropped to the ink plus ``padding`` (x, y) pixels.

    ``height`` fixes the image height (text centred, font shrunk if it would not fit); ``rng`` (a seed or a
    ``numpy.random.Generator``) adds mild rotation, blur and noise via :func:`augment`.
    """
    if not features.check("raqm"):
        raise RuntimeError("Pillow was built without libraqm; Devanagari cannot be shaped correctly")
    text = normalize_text(text)
    if not text:
        raise ValueError("cannot render an empty line")
    face = _as_face(font)
    pad_x, pad_y = padding
    for _ in range(5):
        loaded = face.load(size)
        left, top, right, bottom = loaded.getbbox(text, anchor="ls", language="hi")
        if height is None or bottom - top <= height - 2 or size <= 6:
            break
        size = max(6, int(size * (height - 2) / (bottom - top)))
    ink_h = bottom - top
    out_h = height if height is not None else ink_h + 2 * pad_y
    image = Image.new("L", (right - left + 2 * pad_x, out_h), paper)
    origin = (pad_x - left, (out_h - ink_h) // 2 - top)
    ImageDraw.Draw(image).text(origin, text, font=loaded, fill=ink, anchor="ls", language="hi")
    if rng is not None:
        image = augment(image, rng, paper=paper)
    return image


def augment(image: Image.Image, rng, paper: int = 255) -> Image.Image:
    """Mild scan defects, each applied by chance: a small tilt (height kept), slight blur, sensor noise."""
    rng = np.random.default_rng(rng)
    tilt, blur, noisy = rng.random(3)
    angle, radius, sigma = rng.uniform(-1.2, 1.2), rng.uniform(0.3, 0.9), rng.uniform(2, 8)
    if tilt < 0.5:
        height = image.height
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=paper)
        width = max(1, round(image.width * height / image.height))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    if blur < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    if noisy < 0.5:
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, sigma, (image.height, image.width))
        image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    return image


def render_sample(text: str, rng, fonts=None, height: int = 64, augmented: bool = True, font_size: int = 0):
    """One synthetic training image: a random family, face, size, padding and contrast drawn from ``rng``.

    Families are drawn first so that one with many files (Poppins has 18) does not dominate. ``font_size`` > 0
    draws only the face: that size, black on white, fixed padding, no scan noise (the quick start's clean lines).
    Returns ``(image, face)``.
    """
    rng = np.random.default_rng(rng)
    fonts = list(fonts) if fonts else devanagari_fonts()
    if font_size > 0:
        face = fonts[int(rng.integers(len(fonts)))]
        return render_line(text, face, font_size, height=height), face
    families = sorted({f.family for f in fonts})
    family = families[rng.integers(len(families))]
    candidates = [f for f in fonts if f.family == family]
    face = candidates[rng.integers(len(candidates))]
    size = int(rng.integers(round(0.42 * height), round(0.62 * height) + 1))
    padding = (int(rng.integers(2, size + 1)), 0)
    paper, ink = int(rng.integers(215, 256)), int(rng.integers(0, 70))
    image = render_line(text, face, size, height=height, padding=padding, ink=ink, paper=paper,
                        rng=rng if augmented else None)
    return image, face


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


@functools.lru_cache(maxsize=None)
def _vocabulary():
    """Hindi words from wordfreq and a cumulative sampling distribution over them.

    Weights are frequency**0.5: plain Zipf sampling would fill half of every line with के/में/है.
    """
    from wordfreq import get_frequency_dict

    words, weights = [], []
    for word, freq in get_frequency_dict("hi").items():
        word = normalize_text(word)
        if _DEVANAGARI_WORD.match(word) and not any("\u0966" <= c <= "\u096f" for c in word):
            words.append(word)
            weights.append(freq ** 0.5)
    cdf = np.cumsum(weights)
    return words, cdf / cdf[-1]


@functools.lru_cache(maxsize=None)
def common_words(n: int) -> tuple[str, ...]:
    """wordfreq's ``n`` commonest Hindi words written only in Devanagari letters and marks (no digits), commonest first."""
    from wordfreq import top_n_list

    words = []
    for word in top_n_list("hi", 4 * n + 100):
        word = normalize_text(word)
        if _DEVANAGARI_WORD.match(word) and not any("\u0966" <= c <= "\u096f" for c in word) and word not in words:
            words.append(word)
            if len(words) == n:
                return tuple(words)
    raise ValueError(f"wordfreq has only {len(words)} usable Hindi words; asked for {n}")


def read_text_lines(path) -> list[str]:
    """Non-empty NFC lines of a UTF-8 text file, duplicates dropped (so no line lands in two splits)."""
    seen = {}
    with open(path, encoding="utf-8-sig") as handle:
        for line in handle:
            line = normalize_text(line)
            if line:
                seen.setdefault(line, None)
    return list(seen)


def generate_lines(n: int | None, seed: int = 0, text_file=None, min_words: int = 3,
                   max_words: int = 8, vocabulary: int = 0) -> list[str]:
    """``n`` lines, the same for the same seed: shuffled ``text_file`` lines, or frequency-drawn Hindi words.

    With a text file, ``n=None`` returns all of its lines; asking for more lines than it has is an error.
    ``vocabulary`` > 0: ``n`` *distinct* lines of words drawn uniformly from the ``vocabulary`` commonest ones, so
    that no line is in two splits and a model must read each word from the image (no word is likelier than another).
    """
    rng = np.random.default_rng(seed)
    if text_file is not None:
        lines = read_text_lines(text_file)
        if n is not None and n > len(lines):
            raise ValueError(f"{text_file} has {len(lines)} distinct non-empty lines; {n} were requested")
        order = rng.permutation(len(lines))
        return [lines[i] for i in order[: len(lines) if n is None else n]]
    if n is None:
        raise ValueError("n is required without a text_file")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    if vocabulary > 0:
        return _vocabulary_lines(n, rng, common_words(vocabulary), min_words, max_words)
    words, cdf = _vocabulary()
    lines = []
    for _ in range(n):
        count = int(rng.integers(min_words, max_words + 1))
        picks = np.searchsorted(cdf, rng.random(count), side="right")
        line = " ".join(words[min(i, len(words) - 1)] for i in picks)
        lines.append(line + "।" if rng.random() < 0.25 else line)
    return lines


def _vocabulary_lines(n: int, rng, words, min_words: int, max_words: int) -> list[str]:
    possible = sum(len(words) ** k for k in range(min_words, max_words + 1))
    if n > possible // 2:
        raise ValueError(f"{n} distinct lines of {min_words}-{max_words} words from {len(words)} words: too few "
                         "combinations; raise vocabulary or max_words")
    lines: dict[str, None] = {}
    while len(lines) < n:
        count = int(rng.integers(min_words, max_words + 1))
        lines.setdefault(" ".join(words[i] for i in rng.integers(0, len(words), count)), None)
    return list(lines)


def write_line_folder(root, lines, font: str = "Hind-Regular", size: int = 32, test_samples: bool = False,
                      image_name: str = "{}.png") -> Path:
    """A seed-layout folder of rendered lines: ``data.csv`` + ``output_images/N.png`` (for demos, tests, benches).

    ``test_samples`` copies the same lines into ``TestSamples/`` so a run's test split scores what it trained on.
    """
    import csv
    import shutil

    root = Path(root)
    face = devanagari_fonts(font)[0]
    (root / "output_images").mkdir(parents=True)
    with open(root / "data.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_file", "text"])
        for i, text in enumerate(lines):
            render_line(text, face, size=size).save(root / "output_images" / image_name.format(i))
            writer.writerow([image_name.format(i), text])
    if test_samples:
        (root / "TestSamples").mkdir()
        shutil.copy(root / "data.csv", root / "TestSamples" / "data.csv")
        shutil.copytree(root / "output_images", root / "TestSamples" / "output_images")
    return root
