"""`evaluate` metric: CER, WER and grapheme-cluster CER for Hindi (Devanagari) OCR.

Thin wrapper: all normalisation, segmentation and counting lives in :mod:`hindi_ocr.scoring`, which the
training and inference scripts call directly, so the numbers are the same whichever way they are produced.

The import below is absolute on purpose: ``evaluate`` copies this file into its modules cache, so a relative
import would not resolve, while ``hindi_ocr`` is an installed package.
"""

import datasets
import evaluate

from hindi_ocr.scoring import failure_scores, score

_DESCRIPTION = """\
Corpus-level error rates for Devanagari text-line OCR, computed after normalising both sides with
hindi_ocr.text.normalize_for_scoring (NFC; ZWJ/ZWNJ removed unless keep_zero_width=True; whitespace runs
collapsed to one space and stripped).

- cer: Levenshtein edits over Unicode code points, summed over all lines, divided by the total number of
  reference code points (spaces count).
- wer: the same over space-separated words.
- grapheme_cer: the same over extended grapheme clusters (UAX #29 with rule GB9c, via the `regex`
  module's \\X), so that a conjunct akshara such as "क्षि" is one unit rather than four code points.

Edit distances come from jiwer. A line with an empty reference contributes no reference units and one
insertion per predicted unit. If the whole corpus has no reference units, a rate is 0.0 when there are no
edits and 1.0 otherwise. Rates are not capped and may exceed 1.0.
"""

_CITATION = """\
@misc{jiwer,
  title        = {JiWER: similarity measures for automatic speech recognition evaluation},
  author       = {Vaessen, Nik and contributors},
  howpublished = {\\url{https://github.com/jitsi/jiwer}},
}
@techreport{uax29,
  title       = {Unicode Standard Annex \\#29: Unicode Text Segmentation},
  institution = {The Unicode Consortium},
  howpublished = {\\url{https://www.unicode.org/reports/tr29/}},
}
"""

_KWARGS_DESCRIPTION = """
Computes CER, WER and grapheme-cluster CER of OCR predictions against references.

Args:
    predictions (list of str): recognised text lines.
    references (list of str): ground-truth text lines, one per prediction.
    keep_zero_width (bool, optional, default False): keep ZWJ (U+200D) and ZWNJ (U+200C) when normalising,
        so that a prediction differing from the reference only by a joiner is counted as an error.
    failures (bool, optional, default False): also return the failure scores below.
    repetitions (list of bool, optional): with failures, whether each line was ended by the repetition stop.

Returns:
    dict with float values:
        cer: code-point character error rate (corpus level).
        wer: word error rate (corpus level).
        grapheme_cer: extended-grapheme-cluster error rate (corpus level).
        with failures=True, also catastrophic_rate (share of lines with line CER >= 1 or ended by the repetition
        stop), length_ratio (mean prediction/reference length in code points) and median_cer (median line CER).

Examples:
    >>> metric = evaluate.load("./metrics/cer_wer")
    >>> metric.compute(predictions=["नमस्ते दुनिया"], references=["नमस्ते दुनिया"])
    {'cer': 0.0, 'wer': 0.0, 'grapheme_cer': 0.0}
    >>> metric.compute(predictions=["क्षा"], references=["क्षि"])
    {'cer': 0.25, 'wer': 1.0, 'grapheme_cer': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CerWer(evaluate.Metric):
    """CER / WER / grapheme CER for Devanagari OCR (see hindi_ocr.scoring)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string", id="sequence"),
                    "references": datasets.Value("string", id="sequence"),
                }
            ),
            codebase_urls=["https://github.com/jitsi/jiwer"],
            reference_urls=["https://www.unicode.org/reports/tr29/"],
        )

    def _compute(self, predictions, references, keep_zero_width=False, failures=False, repetitions=None):
        result = score(list(predictions), list(references), keep_zero_width=bool(keep_zero_width))
        if failures:
            result.update(failure_scores(list(predictions), list(references), repetitions, bool(keep_zero_width)))
        return result
