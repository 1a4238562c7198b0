"""Pages in the Trainer (``--lines_per_page N``): the page geometry at the processor's size, the generation budget,
regrouping each epoch, lines counted in training, and evaluation outputs made to hold one line per reference line.

The page itself (layout, grouping, re-reading) is :mod:`hindi_ocr.pages`; :class:`hindi_ocr.training.OcrTrainer`
calls these functions so that a run with one line per image goes through exactly the code it always did.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import TrainerCallback

from .inference import read_images, save_settings
from .pages import PageLayout, settle_pages


def page_layout(processor, lines_per_page: int) -> PageLayout | None:
    """The page geometry at the processor's input size, or None for one line per image."""
    if lines_per_page <= 1:
        return None
    size = processor.image_processor.size  # a dict, transformers 5's SizeDict, or an int
    return PageLayout(int(size) if isinstance(size, int) else int(size["height"]), lines_per_page)


def max_new_tokens(data_args) -> int:
    """Generation budget of one image: a line's tokens and its end (or newline), times the lines on a page."""
    return max(1, data_args.lines_per_page) * (data_args.max_target_tokens + 1)


class PageEpochs(TrainerCallback):
    """Tells a regrouped page dataset which epoch starts, so each epoch draws its own page groups."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int((state.epoch or 0) + 1e-6))


class SettingsInCheckpoints(TrainerCallback):
    """hindi_ocr.json in every checkpoint folder too, so a checkpoint is read as it was trained (line layout, lines
    per page)."""

    def __init__(self, data_args):
        self.data_args = data_args

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            save_settings(str(folder), self.data_args.line_layout, self.data_args.lines_per_page)


def batch_lines(inputs: dict) -> int:
    """Lines in a training batch: pages carry ``line_counts``, a batch of lines has one per row."""
    counts = inputs.get("line_counts")
    return int(counts.sum()) if counts is not None else len(inputs["input_ids"])


def settle_generated(model, builder, tokenizer, generated: torch.Tensor, line_images, gen_kwargs: dict
                     ) -> tuple[torch.Tensor, int]:
    """Generated page ids with exactly one line per line on the page: a page whose output has another count is read
    again one line per page (:func:`hindi_ocr.pages.settle_pages`) and its lines re-encoded, joined by newlines.
    Returns the ids and the number of pages read again."""
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)

    def read_alone(images):
        return read_images(model, builder, [builder.pages.compose([image]) for image in images], **gen_kwargs)

    settled, rereads = settle_pages(texts, line_images, read_alone)
    if not rereads:
        return generated, 0
    rows = [tokenizer("\n".join(lines), add_special_tokens=False)["input_ids"] + [builder.end_of_turn_id]
            for lines in settled]
    out = torch.full((len(rows), max(map(len, rows))), builder.pad_token_id, dtype=generated.dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out.to(generated.device), rereads


def page_lines(predictions: list[str], references: list[str]) -> tuple[list[str], list[str]]:
    """Decoded page predictions and references as lines, each line once (the trainer has already made every page's
    prediction hold as many lines as its reference)."""
    split = [(p.strip("\n").split("\n"), r.split("\n")) for p, r in zip(predictions, references)]
    if any(len(p) != len(r) for p, r in split):
        raise RuntimeError("a page prediction has a different number of lines than its reference")
    return [line for p, _ in split for line in p], [line for _, r in split for line in r]
