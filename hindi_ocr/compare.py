"""Our model and Tesseract on the same lines: the model loaded as ``infer.py`` loads it, each engine timed on its
own, one side-by-side table, a per-font table and one error report per engine.

Why a module: ``infer.py --compare_tesseract`` and ``bench/vs_tesseract.py`` must print the same figures from the
same code. Scores come from :func:`hindi_ocr.scoring.score`, fonts from :func:`hindi_ocr.render.font_of`, reports
from :mod:`hindi_ocr.report`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .inference import Line, load_settings
from .render import font_of
from .report import groups, markdown_table, write_report
from .scoring import score

SUMMARY_HEADERS = ["engine", "CER", "WER", "grapheme_CER", "lines/s", "n"]
SPEED_NOTE = ("lines/s: reading only, each engine timed on its own, model loading excluded (image decoding "
              "included; Tesseract reads all lines in one process, its start-up included).")


@dataclass
class Reader:
    """GOT-OCR2 ready to read lines, and where it came from (the name shown in tables)."""

    model: object
    processor: object
    base: str
    adapter: str | None
    line_layout: str
    lines_per_page: int = 1  # what it was trained with (hindi_ocr.json): the page scale it reads at
    max_new_tokens: int = 256  # per line

    @property
    def engine(self) -> str:
        return f"GOT-OCR2 ({self.adapter or self.base})"


def load_reader(model_name_or_path: str | None, adapter: str | None, *, revision: str | None = None,
                adapter_revision: str | None = None, token: str | None = None, dtype: str = "float32",
                merge: bool = False, allow_pickle_adapter: bool = False, max_new_tokens: int = 256,
                line_layout: str | None = None) -> Reader:
    """The base (default: the adapter's, else GOT-OCR2 on the Hub), the adapter, generation settings and the line
    layout the adapter was trained with (``hindi_ocr.json``) unless ``line_layout`` overrides it."""
    from .generation import configure_generation
    from .modeling import adapter_base_model, load_for_reading
    from .arguments import DEFAULT_MODEL

    base = model_name_or_path or (adapter and adapter_base_model(adapter, adapter_revision, token)) or DEFAULT_MODEL
    model, processor = load_for_reading(base, adapter, revision=revision, adapter_revision=adapter_revision,
                                        token=token, dtype=dtype, merge=merge,
                                        allow_pickle_adapter=allow_pickle_adapter)
    configure_generation(model, processor, max_new_tokens=max_new_tokens)
    import torch

    if torch.cuda.is_available() and not merge:  # e.g. a Kaggle T4: GOT's 1024x1024 vision tower is slow on CPU
        model.to("cuda")
    settings = load_settings(adapter or base, adapter_revision, token)
    return Reader(model, processor, base, adapter, line_layout or settings.get("line_layout", "squash"),
                  int(settings.get("lines_per_page", 1)), max_new_tokens)


@dataclass
class Reading:
    """One engine's predictions for a list of lines and the seconds it spent reading them."""

    engine: str
    slug: str  # file-name-safe: names the engine's report
    predictions: list[str]
    seconds: float
    generated: list = field(default_factory=list)  # the model's lines: generation.Generated (flag, confidence)

    @property
    def lines_per_second(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else float("inf")


def timed(engine: str, slug: str, read: Callable[[], Iterable], on_line: Callable[[int, object], None] | None = None
          ) -> Reading:
    """Run ``read()`` and collect its predictions (texts, or the model's ``Generated`` lines), timing only that
    (``on_line`` sees each one as it comes)."""
    start = time.perf_counter()
    predictions, generated = [], []
    for item in read():
        predictions.append(item if isinstance(item, str) else item.text)
        if not isinstance(item, str):
            generated.append(item)
        if on_line is not None:
            on_line(len(predictions) - 1, item)
    return Reading(engine, slug, predictions, time.perf_counter() - start, generated)


def read_with_model(reader: Reader, lines: Sequence[Line], batch_size: int = 8,
                    on_line: Callable[[int, object], None] | None = None, lines_per_page: int | None = None,
                    stats: dict | None = None) -> Reading:
    """``lines_per_page``: lines read together on one page (default: as trained; see pages.reading_scale);
    ``on_line(i, generated)`` sees each line's :class:`hindi_ocr.generation.Generated` as it comes."""
    from .examples import OcrExampleBuilder
    from .inference import read_lines
    from .pages import PageLayout, reading_scale

    reading, scale = reading_scale(reader.lines_per_page, lines_per_page)
    builder = OcrExampleBuilder(reader.processor, line_layout=reader.line_layout)
    if scale > 1:
        from .checks import check_pages

        check_pages(scale, reader.line_layout)
        builder.pages = PageLayout(builder.image_side, scale)
    return timed(reader.engine, "got-ocr2", lambda: read_lines(reader.model, builder, lines, batch_size, reading,
                                                               reader.max_new_tokens, stats), on_line)


def read_with_tesseract(tesseract, lines: Sequence[Line]) -> Reading:
    """``tesseract``: a :class:`hindi_ocr.tesseract.Tesseract` (from ``locate()``)."""
    return timed(tesseract.engine, "tesseract", lambda: tesseract.read([line.image for line in lines]))


def _scored(lines: Sequence[Line]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.reference is not None]


def _row(reading: Reading, indices: Sequence[int], lines: Sequence[Line], speed: bool = True) -> list:
    m = score([reading.predictions[i] for i in indices], [lines[i].reference for i in indices])
    cells = [reading.engine, f"{m['cer']:.4f}", f"{m['wer']:.4f}", f"{m['grapheme_cer']:.4f}"]
    return cells + ([f"{reading.lines_per_second:.2f}"] if speed else []) + [len(indices)]


def summary_table(readings: Sequence[Reading], lines: Sequence[Line]) -> str | None:
    """engine | CER | WER | grapheme_CER | lines/s | n over the lines with references (None if there are none)."""
    indices = _scored(lines)
    return markdown_table(SUMMARY_HEADERS, [_row(r, indices, lines) for r in readings]) if indices else None


def font_table(readings: Sequence[Reading], lines: Sequence[Line]) -> str | None:
    """font | engine | CER | WER | grapheme_CER | n, when image names carry the font (rendered lines), else None."""
    indices = _scored(lines)
    fonts = [font_of(lines[i].image) for i in indices]
    if not any(fonts):
        return None
    rows = [[font or "(unknown)"] + _row(r, [indices[j] for j in group], lines, speed=False)
            for font, group in groups(fonts).items() for r in readings]
    headers = ["font"] + [h for h in SUMMARY_HEADERS if h != "lines/s"]
    return markdown_table(headers, rows)


def write_reports(readings: Sequence[Reading], lines: Sequence[Line], paths: Sequence[Path]) -> list[Path]:
    """One Markdown report (+ PNG chart) per reading, to the matching path; lines without references are left out."""
    indices = _scored(lines)
    written = []
    for reading, path in zip(readings, paths):
        written += write_report(path, [reading.predictions[i] for i in indices], [lines[i].reference for i in indices],
                                [lines[i].image for i in indices], engine=reading.engine)
    return written
