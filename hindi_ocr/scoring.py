"""Character, word and grapheme error rates for Devanagari OCR output.

This module is the one implementation of the project's scores: ``train.py`` / ``infer.py`` import it
directly and the ``evaluate`` metric in ``metrics/cer_wer`` is a thin wrapper around :func:`score`.

Rules (also described in ``metrics/cer_wer/README.md``):

* Normalisation. Every prediction and reference goes through
  :func:`hindi_ocr.text.normalize_for_scoring` first: NFC, ZWJ/ZWNJ removed (unless ``keep_zero_width=True``),
  runs of whitespace collapsed to one space, outer whitespace stripped.
* Units. ``cer`` counts Unicode code points (the space between words is a unit too), ``wer`` counts words
  (space-separated), ``grapheme_cer`` counts extended grapheme clusters as segmented by the ``regex``
  module's ``\\X``, which implements UAX #29 including rule GB9c (Unicode 15.1+): a consonant, virama,
  consonant sequence stays in one cluster, so ``क्षि`` is one unit (one akshara). The ``grapheme`` package
  (0.6) predates GB9c and would split it into ``क्`` + ``षि``, which is why it is not used here. With the
  installed ``regex`` a ZWJ after the virama keeps the conjunct in one cluster and a ZWNJ breaks it
  (``क्‌ष`` is two clusters); this only matters with ``keep_zero_width=True``.
* Corpus-level rates. A rate is the total number of edits (substitutions + deletions + insertions, Levenshtein
  distance computed by jiwer) over the total number of reference units, summed over all lines, the way jiwer
  does it; it is not the mean of per-line rates. A rate can exceed 1.0 when predictions add material.
* Empty references. A line whose normalised reference is empty adds zero reference units and one insertion per
  unit of its prediction. If the whole corpus has zero reference units the rate would be a division by zero;
  it is then defined as 0.0 when there are no edits (every prediction is empty too) and 1.0 otherwise.
  An empty corpus (no lines at all) therefore scores 0.0.
* Failures (:func:`failure_scores`), which a mean CER hides: a line is *catastrophic* when its code-point CER is
  >= 1 (as many edits as reference characters: nothing useful was read; this includes every prediction at least
  twice as long as its reference, hallucinated or repeated text, since the surplus alone is that many insertions), or
  when generation was ended by the repetition stop. ``catastrophic_rate``
  is their share of the lines; ``length_ratio`` the mean over lines of prediction/reference length in code points
  (lines with an empty reference left out; 0.0 when none is left); ``median_cer`` the median line CER.
"""

from __future__ import annotations

import statistics
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import jiwer
import regex

from .text import normalize_for_scoring

__all__ = [
    "UNITS",
    "EditCounts",
    "graphemes",
    "tokenize",
    "edit_counts",
    "score",
    "line_scores",
    "line_cer",
    "line_wer",
    "line_grapheme_cer",
    "failure_scores",
]

_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> List[str]:
    """Split ``text`` into extended grapheme clusters (UAX #29 with GB9c), e.g. ``"क्षि"`` -> ``["क्षि"]``."""
    return _GRAPHEME.findall(text)


# Releases of `regex` older than its GB9c support split KA + VIRAMA + SSA into two clusters, which would
# silently inflate grapheme_cer; say so once at import rather than produce numbers that differ by machine.
if len(graphemes("\u0915\u094d\u0937")) != 1:  # pragma: no cover - depends on the installed regex
    warnings.warn(
        f"regex {getattr(regex, '__version__', '?')} does not implement UAX #29 rule GB9c; "
        "grapheme_cer will split Devanagari conjuncts. Upgrade the `regex` package.",
        RuntimeWarning,
        stacklevel=1,
    )


def _chars(text: str) -> List[str]:
    return list(text)


def _words(text: str) -> List[str]:
    # The text is already normalised (single spaces, stripped); split() also returns [] for "".
    return text.split()


# Unit name -> splitter applied to an already normalised string; also the keys of the dict score() returns.
_SPLITTERS: Dict[str, Callable[[str], List[str]]] = {
    "cer": _chars,
    "wer": _words,
    "grapheme_cer": graphemes,
}
UNITS = tuple(_SPLITTERS)


def tokenize(text: str, unit: str = "cer", keep_zero_width: bool = False) -> List[str]:
    """Normalise ``text`` for scoring and split it into the units of ``unit`` (cer / wer / grapheme_cer)."""
    return _splitter(unit)(normalize_for_scoring(text, keep_zero_width=keep_zero_width))


def _splitter(unit: str) -> Callable[[str], List[str]]:
    try:
        return _SPLITTERS[unit]
    except KeyError:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}") from None


@dataclass(frozen=True)
class EditCounts:
    """Edit operations turning the predictions into the references, summed over lines."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_units: int = 0

    @property
    def edits(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """``edits / reference_units``; with no reference units: 0.0 if there are no edits, else 1.0."""
        if self.reference_units == 0:
            return 0.0 if self.edits == 0 else 1.0
        return self.edits / self.reference_units


def _check_inputs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("predictions and references must be sequences of strings, not single strings")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} references")
    for name, seq in (("predictions", predictions), ("references", references)):
        for i, item in enumerate(seq):
            if not isinstance(item, str):
                raise TypeError(f"{name}[{i}] is {type(item).__name__}, expected str")


def _counts(pred_tokens: List[List[str]], ref_tokens: List[List[str]]) -> EditCounts:
    """Levenshtein counts over already tokenised lines (jiwer does the alignment)."""
    insertions_on_empty = 0
    refs, hyps = [], []
    for p, r in zip(pred_tokens, ref_tokens):
        if r:
            refs.append(r)
            hyps.append(p)
        else:
            # Empty reference: every predicted unit is an insertion. Handled here because older jiwer
            # releases refuse empty references.
            insertions_on_empty += len(p)
    if not refs:
        return EditCounts(insertions=insertions_on_empty)

    # The token lists go through jiwer as-is: the "transform" just hands them back.
    def passthrough(lines):
        return lines

    out = jiwer.process_words(refs, hyps, reference_transform=passthrough, hypothesis_transform=passthrough)
    return EditCounts(
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions + insertions_on_empty,
        reference_units=sum(len(r) for r in refs),
    )


def edit_counts(
    predictions: Sequence[str], references: Sequence[str], unit: str = "cer", keep_zero_width: bool = False
) -> EditCounts:
    """Corpus-level edit counts for one unit (cer = code points, wer = words, grapheme_cer = clusters)."""
    _check_inputs(predictions, references)
    split = _splitter(unit)
    preds = [split(normalize_for_scoring(p, keep_zero_width=keep_zero_width)) for p in predictions]
    refs = [split(normalize_for_scoring(r, keep_zero_width=keep_zero_width)) for r in references]
    return _counts(preds, refs)


def score(
    predictions: Sequence[str], references: Sequence[str], keep_zero_width: bool = False
) -> Dict[str, float]:
    """Corpus-level ``{"cer", "wer", "grapheme_cer"}`` of ``predictions`` against ``references``.

    Both sequences must have the same length; line ``i`` of one is compared with line ``i`` of the other.
    """
    _check_inputs(predictions, references)
    norm_preds = [normalize_for_scoring(p, keep_zero_width=keep_zero_width) for p in predictions]
    norm_refs = [normalize_for_scoring(r, keep_zero_width=keep_zero_width) for r in references]
    result = {}
    for unit, split in _SPLITTERS.items():
        counts = _counts([split(p) for p in norm_preds], [split(r) for r in norm_refs])
        result[unit] = float(counts.rate)
    return result


def line_scores(prediction: str, reference: str, keep_zero_width: bool = False) -> Dict[str, float]:
    """:func:`score` of a single line, e.g. to rank the worst lines in an error report."""
    return score([prediction], [reference], keep_zero_width=keep_zero_width)


def line_cer(prediction: str, reference: str, keep_zero_width: bool = False) -> float:
    """Code-point CER of one line."""
    return edit_counts([prediction], [reference], "cer", keep_zero_width).rate


def line_wer(prediction: str, reference: str, keep_zero_width: bool = False) -> float:
    """WER of one line."""
    return edit_counts([prediction], [reference], "wer", keep_zero_width).rate


def line_grapheme_cer(prediction: str, reference: str, keep_zero_width: bool = False) -> float:
    """Grapheme-cluster CER of one line."""
    return edit_counts([prediction], [reference], "grapheme_cer", keep_zero_width).rate


CATASTROPHIC_CER = 1.0  # line CER at or above this: nothing useful was read (or twice the reference's length)


def failure_scores(predictions: Sequence[str], references: Sequence[str], repetitions: Sequence[bool] | None = None,
                   keep_zero_width: bool = False) -> Dict[str, float]:
    """``{"catastrophic_rate", "length_ratio", "median_cer"}`` (see the module docstring); ``repetitions[i]``: line
    ``i``'s generation was ended by the repetition stop."""
    _check_inputs(predictions, references)
    repetitions = [False] * len(predictions) if repetitions is None else list(repetitions)
    if len(repetitions) != len(predictions):
        raise ValueError(f"got {len(repetitions)} repetition flags for {len(predictions)} predictions")
    preds = [tokenize(p, "cer", keep_zero_width) for p in predictions]
    refs = [tokenize(r, "cer", keep_zero_width) for r in references]
    cers = [_counts([p], [r]).rate for p, r in zip(preds, refs)]
    catastrophic = [cer >= CATASTROPHIC_CER or bool(rep) for cer, rep in zip(cers, repetitions)]
    ratios = [len(p) / len(r) for p, r in zip(preds, refs) if r]
    return {
        "catastrophic_rate": sum(catastrophic) / len(cers) if cers else 0.0,
        "length_ratio": sum(ratios) / len(ratios) if ratios else 0.0,
        "median_cer": float(statistics.median(cers)) if cers else 0.0,
    }
