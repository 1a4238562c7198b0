"""How the model generates a line, in one place: greedy decoding to ``<|im_end|>``, a stop for loops, and the per-line
repetition flag and confidence (training evaluation, ``infer.py`` and the demo all generate through here).

The repetition stop. GOT-OCR2 is known to fall into loops (one token, or a phrase, again and again until the token
limit). :class:`RepetitionStop` ends a sequence once its generated tail is one n-gram (``n <= MAX_NGRAM``) written
``REPEATS`` times in a row, and more times for short n-grams, so that a loop covers at least ``MIN_SPAN`` tokens. The
values come from ``bench/repetition_stop.py``: on the 5,810 real Hindi sentences of ``hi_commonvoice_sentences.txt``
(which repeat words, syllables and dots: "पढ़ते पढ़ते", "भीड़....") no line would be stopped, neither in the
project's tokenizer nor counted in code points (GOT's Qwen BPE spends about one token per Devanagari code point);
BENCHMARKS.md has the lines each (n, k) would stop.

A stopped sequence ends without an end token and its text is kept as generated (the loop included), so its CER shows
the damage. Whether a row was stopped is read back from the generated ids (:func:`finished_rows`): the stop fires at
the first step the tail is a loop, so a row whose text (before any end token) ends in a loop was stopped by it.

Confidence. A :class:`TokenLogProbs` logits processor keeps the log-probability of each token chosen; a line's
``confidence`` is the geometric mean of its tokens' probabilities (``exp`` of the mean log-prob, end token included).
Mean rather than min: a line's CER is a share of its characters, and the mean log-prob falls with the share of
uncertain tokens while staying comparable between short and long lines (measured in BENCHMARKS.md: its lowest decile
of held-out lines has a higher CER than the min's); the end token counts because stopping early or late is a reading
error too. Only one step's distribution is held at a time, not the whole ``output_scores``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from .examples import END_OF_TURN

MAX_NGRAM = 24  # longest looping n-gram caught
REPEATS = 4  # copies in a row that make a loop ...
MIN_SPAN = 24  # ... when they cover at least this many tokens (one token: 24 copies; two: 12; six or more: 4)


def configure_generation(model, processor, max_new_tokens: int | None = None) -> None:
    """Greedy decoding that ends a line at ``<|im_end|>``, with the configs' special ids set to the tokenizer's.

    The Trainer aligns the configs with the tokenizer anyway (and warns about it); done here, the model reads
    the same in infer.py as in training, and the tokenizer's own end-of-text also stops generation.
    """
    tokenizer = processor.tokenizer
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    text, gen = model.config.get_text_config(), model.generation_config
    for name in ("bos_token_id", "pad_token_id"):
        if getattr(tokenizer, name) is not None:
            setattr(text, name, getattr(tokenizer, name))
            setattr(gen, name, getattr(tokenizer, name))
    if gen.pad_token_id is None:
        gen.pad_token_id = end_id
    text.eos_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else end_id
    gen.eos_token_id = end_id if text.eos_token_id == end_id else [end_id, text.eos_token_id]
    gen.do_sample = False
    if max_new_tokens is not None:
        gen.max_new_tokens = max_new_tokens
        gen.max_length = None


def end_ids(tokenizer) -> set[int]:
    """Ids after which a generated row holds no more text: the ends :func:`configure_generation` sets (``<|im_end|>``,
    the tokenizer's end of text) and the padding of finished rows."""
    ids = {tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.eos_token_id, tokenizer.pad_token_id}
    return {i for i in ids if i is not None}


def copies_needed(n: int, repeats: int = REPEATS, min_span: int = MIN_SPAN) -> int:
    """Copies of an n-gram in a row that make a loop: ``repeats``, more for short n-grams (``min_span`` tokens)."""
    return max(repeats, -(-min_span // n))


def looping(ids: torch.Tensor, max_ngram: int = MAX_NGRAM, repeats: int = REPEATS, min_span: int = MIN_SPAN
            ) -> torch.Tensor:
    """(batch,) bool: the row ends in one n-gram written ``copies_needed(n)`` times in a row, for some n <= max_ngram.
    Looks only at the last ``max_ngram * repeats`` (or ``min_span``) ids of each row."""
    batch, length = ids.shape
    found = torch.zeros(batch, dtype=torch.bool, device=ids.device)
    for n in range(1, max_ngram + 1):
        copies = copies_needed(n, repeats, min_span)
        if n * copies > length:
            continue
        tail = ids[:, -n * copies:].reshape(batch, copies, n)
        found |= (tail == tail[:, -1:, :]).all(dim=2).all(dim=1)
    return found


class RepetitionStop(StoppingCriteria):
    """Ends a row whose generated tail is a loop (:func:`looping`); the prompt (image tokens) is never looked at."""

    def __init__(self, prompt_length: int):
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        return looping(input_ids[:, self.prompt_length:])


class TokenLogProbs(LogitsProcessor):
    """Records the log-probability of each chosen token, one step late (the token is chosen after this runs);
    :meth:`values` adds the last step's. Leaves the scores unchanged."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []
        self._last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._last is not None:  # input_ids[:, -1] was chosen from the previous step's distribution
            self.steps.append(self._last.gather(1, input_ids[:, -1:])[:, 0])
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def values(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """(batch, new tokens) log-probs of ``new_tokens``, the ids generate() returned after the prompt."""
        steps = list(self.steps)
        if self._last is not None and len(steps) < new_tokens.shape[1]:
            steps.append(self._last.gather(1, new_tokens[:, len(steps) : len(steps) + 1])[:, 0])
        if not steps:
            return torch.zeros(new_tokens.shape[0], 0)
        return torch.stack(steps, dim=1)[:, : new_tokens.shape[1]].cpu()


def finished_rows(new_tokens, ends: set[int]) -> tuple[list[int], list[bool]]:
    """For each row of generated ids: how many tokens the model chose (its text, plus the end token when it wrote
    one) and whether the repetition stop ended it (its text ends in a loop)."""
    lengths, stopped = [], []
    for row in new_tokens.tolist() if isinstance(new_tokens, torch.Tensor) else new_tokens:
        row = [int(t) for t in row]
        text = next((i for i, t in enumerate(row) if t in ends or t < 0), len(row))
        loop = text > 0 and bool(looping(torch.tensor([row[:text]]))[0])
        stopped.append(loop)
        lengths.append(text if loop or text == len(row) else text + 1)
    return lengths, stopped


@dataclass
class Generated:
    """One image's reading: the text, whether the repetition stop ended it, and the model's confidence."""

    text: str
    repetition: bool = False
    confidence: float | None = None

    def fields(self) -> dict:
        """The per-line fields infer.py writes beside the prediction."""
        return {"confidence": None if self.confidence is None else round(self.confidence, 4),
                "repetition": self.repetition}


def generation_kwargs(prompt_length: int, recorder: TokenLogProbs | None = None, stop: bool = True) -> dict:
    """``generate()`` arguments that add the repetition stop (and the confidence recorder) to the defaults."""
    kwargs = {"stopping_criteria": StoppingCriteriaList([RepetitionStop(prompt_length)] if stop else [])}
    if recorder is not None:
        kwargs["logits_processor"] = LogitsProcessorList([recorder])
    return kwargs


def generate_lines(model, inputs: dict, tokenizer, stop: bool = True, **generate_kwargs) -> list[Generated]:
    """Greedy generation over a prepared batch (``input_ids``, ``attention_mask``, pixels or encoder outputs):
    the decoded texts with their repetition flags and confidences (``stop=False``: no repetition stop, to measure)."""
    recorder = TokenLogProbs()
    prompt_length = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        generated = model.generate(**inputs, **generation_kwargs(prompt_length, recorder, stop), **generate_kwargs)
    new_tokens = generated[:, prompt_length:]
    logprobs = recorder.values(new_tokens)
    lengths, stopped = finished_rows(new_tokens, end_ids(tokenizer))
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [Generated(text, flag, line_confidence(logprobs[i, :n]))
            for i, (text, n, flag) in enumerate(zip(texts, lengths, stopped))]


def line_confidence(logprobs: torch.Tensor) -> float | None:
    """Geometric-mean probability of a line's chosen tokens (None when it has none)."""
    return math.exp(float(logprobs.double().mean())) if logprobs.numel() else None

