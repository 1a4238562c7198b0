"""Pages in the Trainer (``--lines_per_page N``): the page geometry at the processor's size, the generation budget,
regrouping each epoch, lines counted in training, and evaluation outputs made to hold one line per reference line.

The page itself (layout, grouping, re-reading) is :mod:`hindi_ocr.pages`; :class:`hindi_ocr.training.OcrTrainer`
calls these functions so that a run with one line per image goes through exactly the code it always did.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from .inference import read_images
from .pages import PageLayout, page_budget, settle_pages


def page_layout(processor, lines_per_page: int) -> PageLayout | None:
    """The page geometry at the processor's input size, or None for one line per image."""
    if lines_per_page <= 1:
        return None
    size = processor.image_processor.size  # a dict, transformers 5's SizeDict, or an int
    return PageLayout(int(size) if isinstance(size, int) else int(size["height"]), lines_per_page)


def max_new_tokens(data_args) -> int:
    """Generation budget of one image: a line's tokens and its end (or newline), times the lines on a page."""
    return page_budget(max(1, data_args.lines_per_page), data_args.max_target_tokens)


class PageEpochs(TrainerCallback):
    """Tells a regrouped page dataset which epoch starts, so each epoch draws its own page groups."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int((state.epoch or 0) + 1e-6))


def batch_lines(inputs: dict) -> int:
    """Lines in a training batch: pages carry ``line_counts``, a batch of lines has one per row."""
    counts = inputs.get("line_counts")
    return int(counts.sum()) if counts is not None else len(inputs["input_ids"])


def generation_is_collective(model, gen_kwargs: dict) -> bool:
    """Whether ``generate`` is a collective call here (DeepSpeed ZeRO-3, FSDP: every process must run each step),
    decided as ``generate`` decides it unless ``synced_gpus`` is given."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    synced = gen_kwargs.get("synced_gpus")
    if synced is None:
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
        from transformers.integrations.fsdp import is_fsdp_managed_module

        synced = is_deepspeed_zero3_enabled() or is_fsdp_managed_module(model)
    return bool(synced)


def settle_generated(model, builder, tokenizer, generated: torch.Tensor, line_images, gen_kwargs: dict
                     ) -> tuple[torch.Tensor, int]:
    """Generated page ids with exactly one line per line on the page: a page whose output has another count is read
    again one line per page (:func:`hindi_ocr.pages.settle_pages`), each line with one line's token budget, and its
    lines re-encoded, joined by newlines. Under collective generation every process takes part in a re-read round
    when any process has a page to read again (one with none reads a line and drops it). Returns the ids and the
    number of pages read again."""
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    alone_kwargs = {**gen_kwargs, "max_new_tokens": builder.max_target_tokens + 1}
    collective = generation_is_collective(model, gen_kwargs)

    def read_alone(images):
        if collective:
            anyone = torch.tensor([len(images)], device=generated.device)
            dist.all_reduce(anyone, op=dist.ReduceOp.MAX)
            if not images and anyone.item():  # another process re-reads: take part, drop the reading
                read_images(model, builder, [builder.pages.compose(line_images[0][:1])], **alone_kwargs)
        if not images:
            return []
        return read_images(model, builder, [builder.pages.compose([image]) for image in images], **alone_kwargs)

    settled, rereads = settle_pages(texts, line_images, read_alone)
    if all("\n".join(lines) == text for lines, text in zip(settled, texts)):
        return generated, rereads
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
