"""CER / WER / grapheme-CER: hindi_ocr.scoring and the evaluate metric in metrics/cer_wer.

Every expected value below was counted by hand; the comments show the units and the edits.
Code points are written with escapes where the difference is invisible.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before evaluate/huggingface_hub read their config

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from hindi_ocr import scoring  # noqa: E402
from hindi_ocr.scoring import (  # noqa: E402
    EditCounts,
    edit_counts,
    graphemes,
    line_cer,
    line_grapheme_cer,
    line_scores,
    line_wer,
    score,
    tokenize,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
METRIC_DIR = PROJECT_ROOT / "metrics" / "cer_wer"

ZWJ = "\u200d"
ZWNJ = "\u200c"
KA, VIRAMA, SSA, NUKTA = "\u0915", "\u094d", "\u0937", "\u093c"
KSSA = KA + VIRAMA + SSA  # क्ष: 3 code points, one akshara


def rates(cer, wer, grapheme_cer):
    return {"cer": pytest.approx(cer), "wer": pytest.approx(wer), "grapheme_cer": pytest.approx(grapheme_cer)}


# --------------------------------------------------------------------------- segmentation


def test_grapheme_segmentation_keeps_conjuncts_together():
    # GB9c: consonant + virama + consonant (+ vowel sign) is one cluster.
    assert graphemes("\u0915\u094d\u0937\u093f") == ["\u0915\u094d\u0937\u093f"]  # क्षि
    assert graphemes("हिन्दी") == ["हि", "न्दी"]
    assert graphemes("नमस्ते") == ["न", "म", "स्ते"]
    assert graphemes("राम ने") == ["रा", "म", " ", "ने"]
    assert graphemes("") == []


def test_zero_width_joiners_and_graphemes():
    # ZWJ after the virama keeps the conjunct in one cluster, ZWNJ breaks it.
    assert graphemes(KA + VIRAMA + ZWJ + SSA) == [KA + VIRAMA + ZWJ + SSA]
    assert graphemes(KA + VIRAMA + ZWNJ + SSA) == [KA + VIRAMA + ZWNJ, SSA]


def test_tokenize_units():
    line = "  मैं  घर\tजा "
    assert tokenize(line, "wer") == ["मैं", "घर", "जा"]
    assert tokenize(line, "cer") == list("मैं घर जा")
    assert len(tokenize(line, "cer")) == 9  # म ै ं + space + घ र + space + ज ा
    assert tokenize(line, "grapheme_cer") == ["मैं", " ", "घ", "र", " ", "जा"]
    with pytest.raises(ValueError):
        tokenize(line, "bytes")


# --------------------------------------------------------------------------- basic rates


def test_exact_match_is_zero():
    lines = ["भारत एक विशाल देश है", "क्षत्रिय", "श्री"]
    assert score(lines, lines) == {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}


def test_result_types_and_keys():
    result = score(["कमल"], ["कमर"])
    assert set(result) == {"cer", "wer", "grapheme_cer"}
    assert all(type(v) is float for v in result.values())


def test_single_substitution_short_line():
    # कमल vs कमर: 3 code points, 3 clusters (क म ल), 1 word; ल -> र is one substitution.
    assert score(["कमर"], ["कमल"]) == rates(1 / 3, 1.0, 1 / 3)


def test_vowel_sign_substitution_inside_conjunct_cluster():
    # नमस्ते = न म स ् त े (6 code points) = [न, म, स्ते] (3 clusters); े -> ी is one code point
    # but changes the whole third cluster.
    assert score(["नमस्ती"], ["नमस्ते"]) == rates(1 / 6, 1.0, 1 / 3)


def test_conjunct_code_points_vs_graphemes():
    # क्षि = क ् ष ि (4 code points), one cluster; क्षा differs only in the vowel sign.
    # Code points: 1 substitution / 4. Graphemes: 1 substitution / 1.
    assert score(["क्षा"], ["क्षि"]) == rates(0.25, 1.0, 1.0)
    assert line_cer("क्षा", "क्षि") == pytest.approx(0.25)
    assert line_grapheme_cer("क्षा", "क्षि") == pytest.approx(1.0)


def test_predictions_longer_than_reference_exceed_one():
    # Reference क (1 unit), prediction कमल: two insertions -> 2/1 at code point and cluster level.
    assert score(["कमल"], ["क"]) == rates(2.0, 1.0, 2.0)


def test_empty_prediction_is_all_deletions():
    assert score([""], ["कमल"]) == rates(1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- normalisation


def test_nukta_precomposed_equals_decomposed():
    precomposed = "\u0958\u093f\u0932\u093e"  # क़िला with U+0958
    decomposed = KA + NUKTA + "\u093f\u0932\u093e"  # क + ़ + िला
    assert precomposed != decomposed
    assert score([precomposed], [decomposed]) == {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}
    assert score([decomposed], [precomposed]) == {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}


def test_missing_nukta_is_an_error():
    # Reference क़िला normalises to क ़ ि ल ा (5 code points) = [क़ि, ला]; किला drops the nukta:
    # 1 deletion / 5 code points, 1 substituted cluster / 2.
    assert score(["किला"], ["\u0958\u093f\u0932\u093e"]) == rates(1 / 5, 1.0, 1 / 2)


def test_zero_width_removed_by_default():
    for joiner in (ZWJ, ZWNJ):
        pred = KA + VIRAMA + joiner + SSA
        assert score([pred], [KSSA]) == {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}
        assert score([KSSA], [pred]) == {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}


def test_zwj_kept_on_request():
    # Reference क्ष: 3 code points, 1 cluster. Prediction क्‍ष: 4 code points, still 1 cluster.
    # Code points: 1 insertion / 3. Clusters: the one cluster differs -> 1 substitution / 1.
    pred = KA + VIRAMA + ZWJ + SSA
    assert score([pred], [KSSA], keep_zero_width=True) == rates(1 / 3, 1.0, 1.0)


def test_zwnj_kept_on_request():
    # Prediction क्‌ष is two clusters [क्‌, ष] against one [क्ष]: 1 substitution + 1 insertion = 2 / 1.
    pred = KA + VIRAMA + ZWNJ + SSA
    assert score([pred], [KSSA], keep_zero_width=True) == rates(1 / 3, 1.0, 2.0)
    # The two joiners are different characters: 1 code point substitution out of 4.
    zwj_ref = KA + VIRAMA + ZWJ + SSA
    assert line_cer(pred, zwj_ref, keep_zero_width=True) == pytest.approx(1 / 4)
    assert line_cer(pred, zwj_ref) == 0.0


def test_whitespace_collapsed_and_stripped():
    assert score(["  राम   ने\tफल\n खाया  "], ["राम ने फल खाया"]) == rates(0.0, 0.0, 0.0)
    assert score(["राम ने फल खाया"], ["\tराम  ने फल   खाया\n"]) == rates(0.0, 0.0, 0.0)


def test_missing_space_counts_once():
    # राम ने: 6 code points incl. the space, 4 clusters [रा, म, ' ', ने], 2 words.
    # रामने: 1 deletion of the space; words: 1 substitution + 1 deletion.
    assert score(["रामने"], ["राम ने"]) == rates(1 / 6, 1.0, 1 / 4)


# --------------------------------------------------------------------------- WER and corpus level


def test_wer_multi_word_line():
    # मैं घर जा रहा हूँ (5 words) vs मैं घर जाता हूँ: जा -> जाता substituted, रहा deleted = 2 / 5.
    counts = edit_counts(["मैं घर जाता हूँ"], ["मैं घर जा रहा हूँ"], unit="wer")
    assert counts == EditCounts(substitutions=1, deletions=1, insertions=0, reference_units=5)
    assert counts.edits == 2
    assert line_wer("मैं घर जाता हूँ", "मैं घर जा रहा हूँ") == pytest.approx(0.4)


def test_wer_is_corpus_level():
    # Line 1: 2 edits / 5 words (above). Line 2: यह किताब है (3 words) + inserted भाई = 1 edit.
    # Corpus: 3 / 8 (the mean of per-line rates would be (0.4 + 1/3) / 2).
    preds = ["मैं घर जाता हूँ", "यह किताब है भाई"]
    refs = ["मैं घर जा रहा हूँ", "यह किताब है"]
    assert score(preds, refs)["wer"] == pytest.approx(3 / 8)


def test_cer_is_corpus_level_not_mean_of_lines():
    # Line 1: ख vs क, 1 edit / 1. Line 2: कमल नयन, 0 edits / 7 code points. Corpus 1 / 8, not 0.5.
    # Clusters: 1 / (1 + 7) as well (every letter here is its own cluster, plus the space).
    assert score(["ख", "कमल नयन"], ["क", "कमल नयन"]) == rates(1 / 8, 1 / 3, 1 / 8)


# --------------------------------------------------------------------------- empty references


def test_empty_reference_counts_insertions_in_corpus():
    # Line 1 exact (कमल: 3 code points, 3 clusters, 1 word); line 2 empty reference, prediction घर:
    # 2 code-point insertions, 2 cluster insertions, 1 word insertion, no reference units.
    assert score(["कमल", "घर"], ["कमल", ""]) == rates(2 / 3, 1.0, 2 / 3)


def test_all_references_empty():
    assert score([""], [""]) == {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}
    # Whitespace-only and joiner-only predictions normalise to "" -> still no edits.
    assert score(["  \t", ZWNJ], ["", " "]) == {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}
    # Any predicted unit against an all-empty corpus: 1.0, however many insertions.
    assert score(["अ"], [""]) == {"cer": 1.0, "wer": 1.0, "grapheme_cer": 1.0}
    assert score(["", "कमल नयन"], ["", ""]) == {"cer": 1.0, "wer": 1.0, "grapheme_cer": 1.0}
    assert edit_counts(["कमल नयन"], [""]) == EditCounts(insertions=7)


def test_zwnj_only_prediction_with_keep_is_an_insertion():
    assert score([ZWNJ], [""], keep_zero_width=True) == {"cer": 1.0, "wer": 1.0, "grapheme_cer": 1.0}


def test_empty_corpus():
    assert score([], []) == {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}


# --------------------------------------------------------------------------- helpers and input checks


def test_line_scores_matches_score():
    assert line_scores("नमस्ती", "नमस्ते") == score(["नमस्ती"], ["नमस्ते"])


def test_input_validation():
    with pytest.raises(ValueError):
        score(["a", "b"], ["a"])
    with pytest.raises(TypeError):
        score("कमल", "कमल")
    with pytest.raises(TypeError):
        score([None], ["कमल"])
    with pytest.raises(ValueError):
        edit_counts(["a"], ["a"], unit="bytes")


def test_units_constant():
    assert scoring.UNITS == ("cer", "wer", "grapheme_cer")


# --------------------------------------------------------------------------- evaluate wrapper

ZERO = {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}
KEEP = {"keep_zero_width": True}
CASES = [
    # (predictions, references, kwargs, expected)
    (["भारत एक देश है"], ["भारत एक देश है"], {}, {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}),
    (["क्षा"], ["क्षि"], {}, {"cer": 0.25, "wer": 1.0, "grapheme_cer": 1.0}),
    (["\u0958\u093f\u0932\u093e"], [KA + NUKTA + "\u093f\u0932\u093e"], {}, ZERO),
    ([KA + VIRAMA + ZWNJ + SSA], [KSSA], {}, {"cer": 0.0, "wer": 0.0, "grapheme_cer": 0.0}),
    ([KA + VIRAMA + ZWNJ + SSA], [KSSA], KEEP, {"cer": 1 / 3, "wer": 1.0, "grapheme_cer": 2.0}),
    # Code points: "जा रहा" -> "जाता" is 3 edits (space -> त, र and ह deleted) of 17, " भाई" 4 insertions
    # against 11 -> 7/28. Clusters: [जा ␣ र हा] -> [जा ता] is 3 edits of 11, [␣ भा ई] 3 insertions
    # against 8 -> 6/19. Words: 3/8.
    (["मैं घर जाता हूँ", "यह किताब है भाई"], ["मैं घर जा रहा हूँ", "यह किताब है"], {},
     {"cer": 7 / 28, "wer": 3 / 8, "grapheme_cer": 6 / 19}),
    (["कमल", "घर"], ["कमल", ""], {}, {"cer": 2 / 3, "wer": 1.0, "grapheme_cer": 2 / 3}),
    (["अ"], [""], {}, {"cer": 1.0, "wer": 1.0, "grapheme_cer": 1.0}),
]


@pytest.fixture(scope="module")
def metric():
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(str(METRIC_DIR))


@pytest.mark.parametrize("preds, refs, kwargs, expected", CASES)
def test_evaluate_metric_matches_scoring(metric, preds, refs, kwargs, expected):
    result = metric.compute(predictions=preds, references=refs, **kwargs)
    assert result == score(preds, refs, **kwargs)
    assert result == {k: pytest.approx(v) for k, v in expected.items()}


def test_evaluate_metric_wer_multi_line(metric):
    result = metric.compute(predictions=CASES[5][0], references=CASES[5][1])
    assert result["wer"] == pytest.approx(3 / 8)


def test_evaluate_metric_add_batch(metric):
    metric.add_batch(predictions=["कमर"], references=["कमल"])
    metric.add_batch(predictions=["नमस्ते"], references=["नमस्ते"])
    # 1 code-point edit / (3 + 6); 1 cluster edit / (3 + 3); 1 word / 2 words.
    assert metric.compute() == rates(1 / 9, 1 / 2, 1 / 6)


def test_evaluate_metric_failure_scores(metric):
    preds, refs = ["कमल", "xxxx", "घर"], ["कमल", "घर", "घर"]  # line CERs 0, 4/2, 0; the third ended by the stop
    result = metric.compute(predictions=preds, references=refs, failures=True, repetitions=[False, False, True])
    assert result["catastrophic_rate"] == pytest.approx(2 / 3) and result["median_cer"] == 0.0
    assert result["length_ratio"] == pytest.approx((1 + 2 + 1) / 3)
    assert set(metric.compute(predictions=preds, references=refs)) == {"cer", "wer", "grapheme_cer"}


def test_evaluate_load_relative_path(monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.chdir(PROJECT_ROOT)
    metric = evaluate.load("./metrics/cer_wer")
    assert metric.compute(predictions=["कमर"], references=["कमल"]) == rates(1 / 3, 1.0, 1 / 3)


def test_evaluate_metric_info(metric):
    assert set(metric.features) == {"predictions", "references"}
    assert metric.features["predictions"].dtype == "string"
    assert metric.features["references"].dtype == "string"
    assert "grapheme" in metric.description
    assert metric.citation
    assert "keep_zero_width" in metric.inputs_description
