"""Pages: several text lines typeset on one GOT-OCR2 input, so one vision-tower pass reads them all.

GOT-OCR2 is a page reader: its 1024x1024 input and 256 image tokens hold a page of text, and the vision tower is
most of the cost of a training step. A line squashed to the square input is also far from what GOT saw in
pre-training (glyphs stretched ~15x vertically). ``--lines_per_page N`` (N > 1) lays N lines top to bottom on one
page at their natural aspect ratio; the target is their NFC texts joined by ``\\n``; the output is split on ``\\n``.

Geometry (:class:`PageLayout`): every line is scaled to one common height set by N (the page's "scale"), or
smaller when it would be wider than the page; lines sit at the left margin, one below the other. A page may hold
fewer than N lines at the same scale (a lone line is read alone on a page at the training scale). Training pages
get small seeded variations of the margins and gaps, and about one page in five holds fewer lines (0.20-0.23 of
pages measured for 1,000 to 80,000 lines, up to 0.40 for 100: bench/short_pages.py), so that the model learns where a
page's text ends.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .examples import paper_colour, to_rgb

MARGIN = 1 / 32  # of the page side, nominal margin on every edge
GAP = 0.5  # nominal space between lines, as a fraction of the line height
JITTER = 0.5  # training: margins and gaps vary by up to +-50% of their nominal size
MAX_GAIN = 2.0  # a line's colours are scaled by at most 2x (or 1/2x) to match the page's paper
SHORT_PAGE_SHARE = 8  # training: one extra page per 8N lines; ~1 page in 5 then holds fewer than N lines


@dataclass(frozen=True)
class PageLayout:
    """Where lines go on a ``side`` x ``side`` page that holds up to ``lines`` lines."""

    side: int
    lines: int

    def __post_init__(self):
        if self.lines < 1:
            raise ValueError(f"--lines_per_page must be at least 1, got {self.lines}")
        if self.line_height < 4:
            raise ValueError(f"--lines_per_page {self.lines} leaves lines {self.line_height} pixels high on a "
                             f"{self.side}-pixel page; use fewer lines per page")

    @property
    def margin(self) -> int:
        return max(1, round(self.side * MARGIN))

    @property
    def line_height(self) -> int:
        """The common line height: N lines and the widest gaps jitter allows fit between the two margins."""
        return math.floor((self.side - 2 * self.margin) / (self.lines + (self.lines - 1) * GAP * (1 + JITTER)))

    @property
    def max_width(self) -> int:
        return self.side - 2 * self.margin

    def line_size(self, image: Image.Image) -> tuple[int, int]:
        """A line's size on the page: the common height, or less when that would make it wider than the page."""
        scale = min(self.line_height / image.height, self.max_width / image.width)
        return max(1, round(image.width * scale)), max(1, round(image.height * scale))

    def boxes(self, images: Sequence[Image.Image], seed: int | None = None) -> list[tuple[int, int, int, int]]:
        """(left, top, width, height) of each line; ``seed`` (training) varies the margins and gaps."""
        if len(images) > self.lines:
            raise ValueError(f"{len(images)} lines do not fit on a page of {self.lines}")
        rng = random.Random(seed) if seed is not None else None

        def vary(size: float) -> float:
            return size if rng is None else size * (1 + JITTER * rng.uniform(-1, 1))

        height, gap = self.line_height, self.line_height * GAP
        left, top = round(vary(self.margin)), vary(self.margin)
        boxes = []
        for image in images:
            width, scaled = self.line_size(image)
            boxes.append((left, round(top + (height - scaled) / 2), width, scaled))  # centred in its row
            top += height + vary(gap)
        return boxes

    def compose(self, images: Sequence[Image.Image], seed: int | None = None) -> Image.Image:
        """The page: lines (upright RGB) pasted top to bottom on paper of their median paper colour; each line's
        colours are scaled so its own paper (:func:`hindi_ocr.examples.paper_colour`) matches the page's, leaving no
        visible box around it (the scale is bounded by ``MAX_GAIN``)."""
        lines = [to_rgb(image) for image in images]
        papers = np.array([paper_colour(line) for line in lines] or [(255, 255, 255)], dtype=np.float64)
        paper = tuple(int(v) for v in np.median(papers, axis=0).round())
        page = Image.new("RGB", (self.side, self.side), paper)
        for line, own, (left, top, width, height) in zip(lines, papers, self.boxes(lines, seed)):
            if (width, height) != line.size:
                line = line.resize((width, height), Image.Resampling.BICUBIC)
            if tuple(own) != paper:
                # bounded: should a crop be almost all dark (no paper to estimate), ink below 1/MAX_GAIN of the
                # page's paper stays ink instead of being brightened to white
                gain = np.clip(np.array(paper, dtype=np.float64) / np.maximum(own, 1), 1 / MAX_GAIN, MAX_GAIN)
                line = Image.fromarray(np.clip(np.asarray(line) * gain, 0, 255).round().astype(np.uint8))
            page.paste(line, (left, top))
        return page


def page_text(texts: Sequence[str]) -> str:
    """What a page reads as: its lines' texts, top to bottom, one per line."""
    return "\n".join(texts)


def split_page(text: str, count: int) -> list[str] | None:
    """A page's output as its ``count`` lines, or None when the model wrote a different number of lines."""
    lines = text.strip("\n").split("\n")
    return lines if len(lines) == count else None


def page_budget(lines: int, per_line: int) -> int:
    """New tokens for a page of ``lines`` lines of up to ``per_line`` tokens each: each line's tokens and the newline
    (or the end of turn) after it, the same in training and in infer.py, so a page of long lines is not cut short."""
    return lines * (per_line + 1)


def one_line(text: str) -> str:
    """A single line's reading as one line: line breaks a model writes for one line become spaces, so the whole
    output counts against that line's reference and infer.py prints one prediction per image."""
    return " ".join(text.split("\n"))


def settle_pages(outputs: Sequence[str], groups: Sequence[Sequence], read_alone: Callable[[list], list[str]]
                 ) -> tuple[list[list[str]], int]:
    """Each page's lines, one prediction per line; a page of several lines whose output has another number of lines
    is read again one line per page (``read_alone`` gets those lines' items), so no prediction is lost or shifted
    onto another line's reference. A page of one line is not read again: it would be the same image; all of its
    output is that line's. ``read_alone`` is called once, with no items when no page needs it (under collective
    generation every process must take part in every round). Returns the lines and the number of pages read again."""
    settled = [split_page(text, len(group)) or ([one_line(text)] if len(group) == 1 else None)
               for text, group in zip(outputs, groups)]
    redo = [i for i, lines in enumerate(settled) if lines is None]
    alone = read_alone([item for i in redo for item in groups[i]])
    start = 0
    for i in redo:
        # a lone line read as several lines: all of it counts against that line's reference
        settled[i] = [one_line(text) for text in alone[start : start + len(groups[i])]]
        start += len(groups[i])
    return settled, len(redo)


def page_sizes(count: int, per_page: int, rng: random.Random | None) -> list[int]:
    """How many lines each page holds. Reading: full pages in order, the last one partial. Training (``rng``): a
    fixed number of pages, ceil(count / N) plus one per 8N lines, with the spare room taken from random pages."""
    if rng is None:
        return [min(per_page, count - start) for start in range(0, count, per_page)]
    pages = min(count, math.ceil(count / per_page) + math.ceil(count / (SHORT_PAGE_SHARE * per_page)))
    sizes, spare = [per_page] * pages, pages * per_page - count
    while spare > 0:
        full = [i for i, size in enumerate(sizes) if size == per_page] or [i for i, s in enumerate(sizes) if s > 1]
        page = rng.choice(full)
        cut = rng.randint(1, min(spare, sizes[page] - 1))
        sizes[page] -= cut
        spare -= cut
    return sizes


class PageDataset(torch.utils.data.Dataset):
    """A line dataset (rows with ``image`` and ``text``) read as pages: each item is ``{"image": [...], "text":
    [...], "page_seed": int | None}``, composed by the collator (:class:`hindi_ocr.examples.OcrExampleBuilder`).

    Reading pages (``train=False``) are the lines in order, N at a time, at the nominal layout: the same pixels at
    every evaluation, so the image-feature cache applies. Training pages are seeded groups of shuffled lines with
    varied margins; ``regroup`` draws new groups and variations each epoch (the trainer calls ``set_epoch``),
    otherwise the same pages come back every epoch (and their features can be cached).
    """

    def __init__(self, lines, per_page: int, train: bool = False, seed: int = 0, regroup: bool = True):
        self.lines, self.per_page, self.train, self.seed, self.regroup = lines, per_page, train, seed, regroup
        self.epoch = 0
        self._groups = self._grouping()

    def _grouping(self) -> list[list[int]]:
        count = len(self.lines)
        if not self.train:
            return [list(range(s, s + n)) for s, n in zip(range(0, count, self.per_page),
                                                          page_sizes(count, self.per_page, None))]
        rng = random.Random(f"{self.seed}-{self.epoch if self.regroup else 0}")
        order = list(range(count))
        rng.shuffle(order)
        groups, start = [], 0
        for size in page_sizes(count, self.per_page, rng):
            groups.append(order[start : start + size])
            start += size
        return groups

    def set_epoch(self, epoch: int) -> None:
        if self.train and self.regroup and epoch != self.epoch:
            self.epoch = epoch
            self._groups = self._grouping()

    def __len__(self) -> int:
        return len(self._groups)

    @property
    def num_lines(self) -> int:
        return len(self.lines)

    def __getitem__(self, index: int) -> dict:
        rows = [self.lines[i] for i in self._groups[index]]
        seed = None
        if self.train:
            seed = hash((self.seed, self.epoch if self.regroup else 0, index)) & 0x7FFFFFFF
        return {"image": [row["image"] for row in rows], "text": [row["text"] for row in rows], "page_seed": seed}


def as_pages(split, per_page: int, train: bool = False, seed: int = 0, regroup: bool = True):
    """``split`` as a :class:`PageDataset` when pages are on (N > 1), else unchanged."""
    if split is None or per_page <= 1:
        return split
    return PageDataset(split, per_page, train=train, seed=seed, regroup=regroup)


def reading_scale(trained: int, reading: int | None) -> tuple[int, int]:
    """(lines per page read together, page scale) for a model trained with ``trained`` lines per page.

    A page-trained model reads at its training scale, any number of lines up to N (1: each line alone on a page);
    a line-trained model keeps reading lines one per image unless pages are asked for (then at their own scale).
    """
    reading = reading or trained
    if trained > 1 and reading > trained:
        raise SystemExit(f"--lines_per_page {reading}: this model was trained with pages of {trained} lines; read "
                         f"at most {trained} lines per page (1 reads each line alone on a page at the same scale)")
    return reading, max(trained, reading)


def card_note(lines_per_page: int) -> str:
    """What a model card says to readers of a page-trained model (empty for one line per image)."""
    if lines_per_page <= 1:
        return ""
    return (
        f"\n\nThis model was trained with `--lines_per_page {lines_per_page}`: {lines_per_page} line images typeset "
        "top to bottom on one page at their natural aspect ratio, one common line height, on the lines' paper colour "
        "(`hindi_ocr.pages.PageLayout`); it writes the lines' texts separated by newlines. `infer.py` does this by "
        f"itself: it reads {lines_per_page} lines per page (one pass of the vision encoder for all of them), splits "
        "the output on newlines and reads a page again one line per page when its output has another number of "
        "lines. `--lines_per_page 1` reads each line alone on a page at the same scale. The plain-transformers code "
        "above squashes one line into the square input, which is not what this model was trained on: compose the "
        f"page first, e.g. `PageLayout(1024, {lines_per_page}).compose([Image.open(\"line.png\")])`."
    )
