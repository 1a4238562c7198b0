"""The one place where GOT-OCR2 inputs are built, for training and for reading.

GOT's processor writes the OCR prompt (system turn, ``<img>`` + image tokens, ``OCR: ``, assistant turn) but knows
nothing of labels. Training appends the target text and ``<|im_end|>`` and masks everything else with -100;
generation feeds the same prompt and stops at ``<|im_end|>``. Because every line image is one tile, every prompt in
a batch has the same length, so a training batch's first ``prompt_length`` columns are exactly a generation batch.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from .text import normalize_text

IGNORE_INDEX = -100
END_OF_TURN = "<|im_end|>"
LINE_LAYOUTS = ("squash", "letterbox", "fold")


def num_image_tokens_for(config) -> int:
    """Image tokens per tile: the vision grid (image_size / patch_size) shrunk 4x by the projector's two strided convs."""
    vision = config.vision_config
    side = vision.image_size // vision.patch_size // 4
    return side * side


HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(image: Image.Image) -> Image.Image:
    """The line as an upright 8-bit RGB image, whatever the file held: the one conversion for training and reading.

    EXIF orientation is applied (a phone photo stores pixels sideways); 16-bit greyscale is scaled to 8 bits (a plain
    ``convert`` clips it to nearly all white); transparency is laid on white paper (a plain ``convert`` turns a
    transparent background black, hiding black text); CMYK, palette and 1-bit images are converted.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in HIGH_BIT_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257  # 0..65535 -> 0..255
        image = Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8))
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB")


def image_key(image: Image.Image, line_layout: str = "squash") -> str:
    """Content hash of a line image and its layout: equal keys mean equal pixel_values (keys the feature cache)."""
    digest = hashlib.blake2b(f"{line_layout}|{image.mode}|{image.size}|".encode(), digest_size=16)
    digest.update(image.tobytes())
    return digest.hexdigest()


def letterbox(image: Image.Image, side: int) -> Image.Image:
    """Scale a line to fit a side x side square keeping its aspect ratio; pad with the line's own paper colour."""
    image = image.convert("RGB")
    scale = min(side / image.width, side / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGB", (side, side), paper_colour(image))
    canvas.paste(image.resize(size, Image.Resampling.BICUBIC), ((side - size[0]) // 2, (side - size[1]) // 2))
    return canvas


def fold_pieces(image: Image.Image) -> int:
    """How many pieces :func:`fold` cuts a line into: about square once stacked."""
    return max(1, round(math.sqrt(image.width / image.height)))


def fold(image: Image.Image) -> Image.Image:
    """Cut a wide line into k pieces stacked top to bottom (k = round(sqrt(width / height))), so it is about square.

    Squashing a 15:1 line into a square stretches it 15x vertically: every row of image tokens sees the same
    characters, and a row of 4-16 tokens must hold the whole line. Folded, each row of tokens holds 1/k of the
    line at a natural aspect ratio. The pieces are in reading order; the processor then resizes the stack to its
    square input.
    """
    image = image.convert("RGB")
    pieces = fold_pieces(image)
    if pieces == 1:
        return image
    piece_width = math.ceil(image.width / pieces)
    canvas = Image.new("RGB", (piece_width, image.height * pieces), paper_colour(image))
    for i in range(pieces):
        canvas.paste(image.crop((i * piece_width, 0, min(image.width, (i + 1) * piece_width), image.height)),
                     (0, i * image.height))
    return canvas


PAPER_PERCENTILE = 98  # paper is most of a line crop; a frame, underline or dark margin is a few percent of it


def paper_colour(image: Image.Image) -> tuple[int, int, int]:
    """A high percentile of each colour channel over the whole crop, so padding (and a page, hindi_ocr.pages) blends
    with paper that is not pure white. Not the edge rows: a 1-pixel frame, an underline or a dark scanner margin
    would pass for the paper there, and a page would then brighten the line's ink away."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8).reshape(-1, 3)
    return tuple(int(v) for v in np.percentile(pixels, PAPER_PERCENTILE, axis=0, method="nearest"))


@dataclass
class OcrExampleBuilder:
    """Turns (image, text) pairs into GOT-OCR2 model inputs; used as the Trainer's data collator too.

    ``line_layout``: ``squash`` lets GOT's image processor stretch the line to its square input (what the released
    model saw in pre-training); ``letterbox`` keeps the aspect ratio and pads to the square; ``fold`` stacks
    pieces of the line into a near-square block (:func:`fold`).

    ``pages`` (a :class:`hindi_ocr.pages.PageLayout`, with ``--lines_per_page`` > 1): rows whose ``image`` and
    ``text`` are lists (:class:`hindi_ocr.pages.PageDataset` items) are typeset on one page each, and their target
    is the lines' texts joined by ``\n``; the line layout then does not apply (a page is already square).
    """

    processor: object
    line_layout: str = "squash"
    max_target_tokens: int = 256
    # Set by the trainer when the image encoder is frozen (training.ImageFeatureCache): batches then carry
    # ``image_keys``, and a batch whose images all have cached features skips the image processor.
    feature_cache: object = field(default=None, repr=False, compare=False)
    pages: object = None  # hindi_ocr.pages.PageLayout when lines are read in pages
    cache_varied_pages: bool = True  # False: training pages drawn anew each epoch are never looked up again

    def __post_init__(self):
        self._prompt = None  # (input_ids, attention_mask) of one prompt: the same for every line image
        if self.line_layout not in LINE_LAYOUTS:
            raise ValueError(f"--line_layout must be one of {LINE_LAYOUTS}, got {self.line_layout!r}")
        tokenizer = self.processor.tokenizer
        self.end_of_turn_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if self.end_of_turn_id is None or self.end_of_turn_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {END_OF_TURN} token; is this a GOT-OCR2 processor?")
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_of_turn_id

    @property
    def image_side(self) -> int:
        size = self.processor.image_processor.size  # a dict, transformers 5's SizeDict, or an int
        return int(size) if isinstance(size, int) else int(size["height"])

    def _prepare_image(self, image: Image.Image) -> Image.Image:
        image = to_rgb(image)
        if self.pages is not None:
            return image  # with pages every input is a composed page: already GOT's square input
        if self.line_layout == "letterbox":
            return letterbox(image, self.image_side)
        return fold(image) if self.line_layout == "fold" else image

    def prompt_inputs(self, images: Sequence[Image.Image], pixels: bool = True) -> dict[str, torch.Tensor]:
        """GOT's OCR prompt for each image, exactly as its processor builds it: input_ids, attention_mask, pixel_values.

        ``pixels=False`` (the trainer holds these images' features) skips the image processor and pixel_values: the
        prompt is the same for every line image, so it is repeated from an earlier batch.
        """
        if not pixels and self._prompt is not None:
            ids, mask = self._prompt
            return {"input_ids": ids.repeat(len(images), 1), "attention_mask": mask.repeat(len(images), 1)}
        batch = self.processor(images=[self._prepare_image(im) for im in images], return_tensors="pt")
        self._prompt = (batch["input_ids"][:1].clone(), batch["attention_mask"][:1].clone())
        return {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}

    def target_ids(self, text: str | Sequence[str]) -> list[int]:
        """Token ids the model must produce for a line: the NFC text, then ``<|im_end|>``. For a page (a list of
        line texts): each line's ids (cut at ``max_target_tokens`` like a lone line's) joined by ``\n``, a line's
        own breaks (refused by the row checks, hindi_ocr.text.text_problem) made spaces, so that a page's target
        always holds as many lines as the page."""
        tokenizer = self.processor.tokenizer
        if isinstance(text, str):
            text = [text]
        elif len(text) > 1:
            text = [" ".join(normalize_text(t).splitlines()) for t in text]
        lines = [tokenizer(normalize_text(t), add_special_tokens=False)["input_ids"][: self.max_target_tokens]
                 for t in text]
        newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
        ids = lines[0]
        for line in lines[1:]:
            ids = ids + newline + line
        return ids + [self.end_of_turn_id]

    def compose(self, rows: Sequence[dict]) -> list[Image.Image]:
        """The page image of each page row (``image`` a list of lines; ``page_seed`` varies a training page)."""
        if self.pages is None:
            raise ValueError("page rows need a builder with pages (--lines_per_page > 1)")
        return [self.pages.compose(row["image"], seed=row.get("page_seed")) for row in rows]

    def training_inputs(self, images: Sequence[Image.Image], texts: Sequence[str],
                        pixels: bool = True) -> dict[str, torch.Tensor]:
        """Prompt + target + ``<|im_end|>``, right-padded; labels are -100 on prompt and padding."""
        prompt = self.prompt_inputs(images, pixels=pixels)
        prompt_ids = prompt["input_ids"]
        targets = [self.target_ids(t) for t in texts]
        width = prompt_ids.shape[1] + max(len(t) for t in targets)
        input_ids = torch.full((len(targets), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for row, target in enumerate(targets):
            end = prompt_ids.shape[1] + len(target)
            input_ids[row, : prompt_ids.shape[1]] = prompt_ids[row]
            input_ids[row, prompt_ids.shape[1] : end] = torch.tensor(target)
            attention_mask[row, :end] = 1
            labels[row, prompt_ids.shape[1] : end] = torch.tensor(target)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if "pixel_values" in prompt:
            batch["pixel_values"] = prompt["pixel_values"]
        return batch

    def __call__(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Data collator over dataset rows with ``image`` and ``text`` (lines), or lists of them (pages).

        Page batches also carry ``line_counts`` (lines per page) and, for reading pages, ``line_images`` (to read a
        page again line by line); the trainer takes both out before the model sees the batch. Training pages that
        change every epoch carry no ``image_keys``: their features would never be asked for again.
        """
        paged = isinstance(rows[0]["text"], list)
        images = self.compose(rows) if paged else [row["image"] for row in rows]
        texts = [row["text"] for row in rows]
        varied = paged and rows[0].get("page_seed") is not None
        cacheable = self.feature_cache is not None and (self.cache_varied_pages or not varied)
        if cacheable:
            keys = [image_key(image, "page" if paged else self.line_layout) for image in images]
            batch = self.training_inputs(images, texts, pixels=not all(key in self.feature_cache for key in keys))
            batch["image_keys"] = keys
        else:
            batch = self.training_inputs(images, texts)
        if paged:
            batch["line_counts"] = torch.tensor([len(text) for text in texts])
            if not varied:
                batch["line_images"] = [row["image"] for row in rows]
        return batch


def prompt_length(labels: torch.Tensor) -> int:
    """Length of the shared prompt in a training batch: the first column where any row has a label."""
    has_label = (labels != IGNORE_INDEX).any(dim=0)
    return int(has_label.nonzero()[0])
