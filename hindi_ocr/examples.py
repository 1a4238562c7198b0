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
    canvas = Image.new("RGB", (side, side), _paper_colour(image))
    canvas.paste(image.resize(size, Image.Resampling.BICUBIC), ((side - size[0]) // 2, (side - size[1]) // 2))
    return canvas


def fold(image: Image.Image) -> Image.Image:
    """Cut a wide line into k pieces stacked top to bottom (k = round(sqrt(width / height))), so it is about square.

    Squashing a 15:1 line into a square stretches it 15x vertically: every row of image tokens sees the same
    characters, and a row of 4-16 tokens must hold the whole line. Folded, each row of tokens holds 1/k of the
    line at a natural aspect ratio. The pieces are in reading order; the processor then resizes the stack to its
    square input.
    """
    image = image.convert("RGB")
    pieces = max(1, round(math.sqrt(image.width / image.height)))
    if pieces == 1:
        return image
    piece_width = math.ceil(image.width / pieces)
    canvas = Image.new("RGB", (piece_width, image.height * pieces), _paper_colour(image))
    for i in range(pieces):
        canvas.paste(image.crop((i * piece_width, 0, min(image.width, (i + 1) * piece_width), image.height)),
                     (0, i * image.height))
    return canvas


def _paper_colour(image: Image.Image) -> tuple[int, int, int]:
    """Median colour of the top and bottom pixel rows, so the padding blends with paper that is not pure white."""
    edges = Image.new("RGB", (image.width, 2))
    edges.paste(image.crop((0, 0, image.width, 1)), (0, 0))
    edges.paste(image.crop((0, image.height - 1, image.width, image.height)), (0, 1))
    return tuple(sorted(band.getdata())[edges.width] for band in edges.split())


@dataclass
class OcrExampleBuilder:
    """Turns (image, text) pairs into GOT-OCR2 model inputs; used as the Trainer's data collator too.

    ``line_layout``: ``squash`` lets GOT's image processor stretch the line to its square input (what the released
    model saw in pre-training); ``letterbox`` keeps the aspect ratio and pads to the square; ``fold`` stacks
    pieces of the line into a near-square block (:func:`fold`).
    """

    processor: object
    line_layout: str = "squash"
    max_target_tokens: int = 256
    # Set by the trainer when the image encoder is frozen (training.ImageFeatureCache): batches then carry
    # ``image_keys``, and a batch whose images all have cached features skips the image processor.
    feature_cache: object = field(default=None, repr=False, compare=False)

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

    def target_ids(self, text: str) -> list[int]:
        """Token ids the model must produce for a line: the NFC text, then ``<|im_end|>``."""
        ids = self.processor.tokenizer(normalize_text(text), add_special_tokens=False)["input_ids"]
        return ids[: self.max_target_tokens] + [self.end_of_turn_id]

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
        """Data collator over dataset rows with ``image`` and ``text``."""
        images, texts = [row["image"] for row in rows], [row["text"] for row in rows]
        if self.feature_cache is None:
            return self.training_inputs(images, texts)
        keys = [image_key(image, self.line_layout) for image in images]
        batch = self.training_inputs(images, texts, pixels=not all(key in self.feature_cache for key in keys))
        batch["image_keys"] = keys
        return batch


def prompt_length(labels: torch.Tensor) -> int:
    """Length of the shared prompt in a training batch: the first column where any row has a label."""
    has_label = (labels != IGNORE_INDEX).any(dim=0)
    return int(has_label.nonzero()[0])
