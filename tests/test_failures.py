"""Knowing when the model fails (hindi_ocr.generation, scoring.failure_scores, hindi_ocr.review): the repetition
stop, the catastrophic-failure rate, per-line confidence and the review folder.

The looping model is the untrained tiny GOT-OCR2: whatever the image, it writes one token ("\\n") again and again and
never the end token. Real Hindi lines that repeat words, syllables and dots must never trip the stop.
"""

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import infer
from hindi_ocr.data import load_line_dataset
from hindi_ocr.examples import OcrExampleBuilder
from hindi_ocr.generation import (
    MAX_NGRAM, MIN_SPAN, RepetitionStop, TokenLogProbs, configure_generation, copies_needed, generate_lines, generation_kwargs,
    looping,
)
from hindi_ocr.render import write_line_folder
from hindi_ocr.review import doubtful
from hindi_ocr.scoring import failure_scores
from hindi_ocr.tiny import build_tiny_model, build_tokenizer, load_tiny

# Lines of ../shared/corpus/hi_commonvoice_sentences.txt (CC0) with the most repetition: doubled words, runs of dots,
# a run of zero-width spaces; and two everyday forms with a word three times.
REPEATING_LINES = [
    "पाँचधारी गिलहरी गिलहरी परिवार में कृंतक की एक प्रजाति है।",
    "थोड़े थोड़े से, उनके बीच की दोस्ती प्यार में बदल गई।",
    "दादाजी अक्सर अखबार पढ़ते पढ़ते सर हिलाते रहते हैं।",
    "सामने आया सुमित को गोली लगने का वीडियो और भड़क गई भीड़....",
    "हमें असली बिजली चाहिए, नकली नहीं....",
    "ऋषि कपूर\u200b ने फिल्म 'ऑल \u200bइज\u200b वेल' का स्पेशल \u200bसॉन्ग \u200b\u200b\u200b\u200bशूट \u200bकिया\u200b \u200b",
    "धीरे धीरे धीरे चलो, जय हो जय हो जय हो!",
    "बहुत बहुत बहुत धन्यवाद... हा हा हा हा",
]
CORPUS = Path(os.environ.get("HINDI_OCR_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))


def stopped_anywhere(ids: list) -> bool:
    """Would the stop end this sequence at some step (it checks the tail after every new token)?"""
    return any(bool(looping(torch.tensor([ids[:end]]))[0]) for end in range(1, len(ids) + 1))


def test_loop_rule_counts_copies_and_span():
    assert [copies_needed(n) for n in (1, 2, 3, 5, 6, 24)] == [24, 12, 8, 5, 4, 4]
    rows = [[7] * 23 + [1], [7] * 23, [7] * 24, [3, 4] * 11 + [9, 9], [3, 4] * 12, [1, 2, 3, 4, 5, 6] * 3,
            [1, 2, 3, 4, 5, 6] * 4, [9] + [1, 2, 3, 4, 5] * 4, [8] + [1, 2, 3, 4, 5] * 5]
    width = max(map(len, rows))  # one batch: rows left-padded with ids that repeat nothing
    ids = torch.tensor([list(range(100, 100 + width - len(row))) + row for row in rows])
    assert looping(ids).tolist() == [False, False, True, False, True, False, True, False, True]
    # the stop looks only past the prompt: a prompt that is one image token 256 times is not a loop
    prompt = [5] * 256
    stop = RepetitionStop(len(prompt))
    assert stop(torch.tensor([prompt + [1, 2]]), None).tolist() == [False]
    assert stop(torch.tensor([prompt + [6] * MIN_SPAN]), None).tolist() == [True]


def test_real_hindi_lines_with_repeats_are_never_stopped():
    tokenizer = build_tokenizer()
    for line in REPEATING_LINES:
        tokens = tokenizer(line, add_special_tokens=False)["input_ids"] + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
        assert not stopped_anywhere(tokens), line
        assert not stopped_anywhere([ord(c) for c in line]), line  # GOT's BPE: about one token per code point
    # the stop does fire on the same text once it loops
    loop = tokenizer("जय हो " * 12, add_special_tokens=False)["input_ids"]
    assert stopped_anywhere(loop)


def most_copies(ids: list, n: int) -> int:
    """Most copies in a row of one n-gram anywhere in ``ids``: a run of ids equal to the id n back, over n, plus 1."""
    best = run = 0
    for i in range(n, len(ids)):
        run = run + 1 if ids[i] == ids[i - n] else 0
        best = max(best, run)
    return best // n + 1


@pytest.mark.skipif(not (CORPUS / "hi_commonvoice_sentences.txt").is_file(), reason=f"needs {CORPUS}")
def test_no_line_of_the_corpus_is_stopped():
    """All 5,810 lines (HINDI_OCR_CORPUS, default ../shared/corpus), with run lengths: looping() on every prefix of
    every line takes minutes. The lines above check that both ways agree on lines that repeat."""
    tokenizer = build_tokenizer()
    for line in REPEATING_LINES + ["जय हो " * 12]:
        ids = tokenizer(line, add_special_tokens=False)["input_ids"]
        assert stopped_anywhere(ids) == any(most_copies(ids, n) >= copies_needed(n) for n in range(1, MAX_NGRAM + 1))
    lines = [s for s in (CORPUS / "hi_commonvoice_sentences.txt").read_text(encoding="utf-8").splitlines() if s]
    stopped = [line for line in lines for ids in (tokenizer(line, add_special_tokens=False)["input_ids"], list(line))
               if any(most_copies(ids, n) >= copies_needed(n) for n in range(1, MAX_NGRAM + 1))]
    assert len(lines) > 5000 and stopped == []


def test_catastrophic_rate_on_hand_made_predictions():
    refs = ["भारत एक देश है", "नमस्ते", "किताब", "पानी", "घर", ""]
    preds = [
        "भारत एक देश है",  # exact: CER 0
        "नमस्त",  # 1 deletion of 6 code points: CER 1/6, fine
        "xxxxxxx",  # 5 substitutions + 2 insertions over 5: CER 1.4 >= 1 -> catastrophic
        "पानी पानी",  # 9 code points for 4: 5 insertions, CER 5/4 -> catastrophic
        "घर",  # exact, but the repetition stop ended it -> catastrophic
        "",  # empty reference, empty prediction: CER 0, left out of the length ratio
    ]
    m = failure_scores(preds, refs, [False, False, False, False, True, False])
    assert m["catastrophic_rate"] == pytest.approx(3 / 6)
    assert m["length_ratio"] == pytest.approx((14 / 14 + 5 / 6 + 7 / 5 + 9 / 4 + 2 / 2) / 5)
    assert m["median_cer"] == pytest.approx((0 + 1 / 6) / 2)  # CERs 0, 1/6, 7/5, 5/4, 0, 0: middle two of six
    # a line read twice is twice as long: its surplus alone makes CER 1; 2 insertions over 5 do not
    assert failure_scores(["कमलकमल"], ["कमल"]) == {"catastrophic_rate": 1.0, "length_ratio": 2.0, "median_cer": 1.0}
    assert failure_scores(["कमल कमल"], ["कमल क"])["catastrophic_rate"] == 0.0
    with pytest.raises(ValueError, match="2 repetition flags for 1 predictions"):
        failure_scores(["क"], ["क"], [True, False])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("failures")
    lines = write_line_folder(work / "lines", ["नमस्ते दुनिया", "भारत एक देश है", "हिंदी भाषा"], font="Hind-Regular",
                              test_samples=True)
    return build_tiny_model(work / "tiny"), lines / "TestSamples"


def read_batch(model_dir, data_dir, stop=True, max_new_tokens=64):
    model, processor = load_tiny(model_dir)
    configure_generation(model, processor, max_new_tokens=max_new_tokens)
    model.eval()
    builder = OcrExampleBuilder(processor)
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in sorted((data_dir / "output_images").glob("*.png"))]
    inputs = builder.prompt_inputs(images)
    return model, processor, inputs, generate_lines(model, dict(inputs), processor.tokenizer, stop=stop)


def test_a_looping_model_stops_early_with_the_flag_set(tiny):
    model_dir, data_dir = tiny
    _, processor, _, free = read_batch(model_dir, data_dir, stop=False)
    assert [g.text for g in free] == ["\n" * 64] * 3  # the untrained model loops to the token limit
    _, _, _, stopped = read_batch(model_dir, data_dir)
    assert [g.text for g in stopped] == ["\n" * 24] * 3  # one token 24 times: the stop ends it there
    assert [g.repetition for g in stopped] == [True] * 3
    assert all(0 < g.confidence < 0.05 for g in stopped)  # a random model over ~900 tokens is unsure of each


def teacher_forced_logprobs(model, inputs, sequences, prompt_length):
    """Log-probs of the generated tokens from one forward pass over prompt + output: logits at position t predict t+1."""
    with torch.no_grad():
        logits = model(input_ids=sequences, attention_mask=torch.ones_like(sequences),
                       pixel_values=inputs["pixel_values"]).logits
    logprobs = torch.log_softmax(logits[:, prompt_length - 1 : -1].float(), dim=-1)
    return logprobs.gather(2, sequences[:, prompt_length:, None])[..., 0]


def check_confidence_positions(model, processor, inputs):
    """The recorder's per-token log-probs equal a teacher-forced pass's, token by token; returns them."""
    recorder, length = TokenLogProbs(), inputs["input_ids"].shape[1]
    with torch.no_grad():
        sequences = model.generate(**inputs, **generation_kwargs(length, recorder))
    recorded = recorder.values(sequences[:, length:])
    expected = teacher_forced_logprobs(model, inputs, sequences, length)
    assert recorded.shape == expected.shape and recorded.shape[1] > 1
    torch.testing.assert_close(recorded, expected, atol=2e-5, rtol=0)
    return expected, sequences[:, length:]


def test_confidence_is_the_chosen_tokens_probability(tmp_path):
    """The "loud" tiny model (tests/demo_helpers.py: language-model weights scaled up) writes varied tokens, so a
    log-prob taken one position off would read another token's probability (the untrained model's one repeated token
    would not tell). The line's confidence counts its tokens up to and with the end token, if it wrote one."""
    from demo_helpers import loud_tiny_model

    from hindi_ocr.generation import end_ids

    data = write_line_folder(tmp_path / "lines", ["नमस्ते दुनिया", "भारत एक देश है", "किताब पढ़ो"], size=32)
    model, processor, inputs, lines = read_batch(loud_tiny_model(tmp_path / "loud"), data, max_new_tokens=20)
    expected, new_tokens = check_confidence_positions(model, processor, inputs)
    assert all(len(set(row)) > 3 for row in new_tokens.tolist())
    ends = end_ids(processor.tokenizer)
    for line, row, ids in zip(lines, expected, new_tokens.tolist()):
        used = next((i + 1 for i, t in enumerate(ids) if t in ends), len(ids))
        assert line.confidence == pytest.approx(math.exp(row[:used].double().mean()), rel=1e-5)


def test_infer_writes_confidence_and_repetition_and_the_failure_figures(tiny, tmp_path, capsys):
    model_dir, data_dir = tiny
    out = tmp_path / "preds.jsonl"
    infer.main(["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--output", str(out),
                "--max_new_tokens", "40"])
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["repetition"] for r in records] == [True] * 3
    assert all(isinstance(r["confidence"], float) and 0 < r["confidence"] < 1 for r in records)
    # predictions are only line breaks (one_line makes them spaces): CER 1 on every line, nothing read
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "CER 1.0000 WER 1.0000 grapheme_CER 1.0000 median_CER 1.0000 catastrophic 1.0000 length_ratio 0.000 (n=3)")
    infer.main(["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--output", str(tmp_path / "p.csv"),
                "--max_new_tokens", "40"])
    with open(tmp_path / "p.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["confidence"], r["repetition"]) for r in rows] == [(str(r["confidence"]), "True") for r in records]


def test_doubtful_lines_are_chosen_least_confident_first():
    records = [{"confidence": c, "repetition": r} for c, r in [(0.9, False), (0.2, False), (0.95, True), (0.5, False),
                                                                (None, False)]]
    assert doubtful(records, below=0.6) == [4, 1, 3, 2]  # no confidence counts as 0; a repetition is always doubtful
    assert doubtful(records, worst=1) == [4, 2]
    assert doubtful(records, below=0.1, worst=3) == [4, 1, 3, 2]
    # records read back from a CSV (--resume) hold text: "False" is not a repetition, "0.5" is a number
    from_csv = [{"confidence": "0.9", "repetition": "False"}, {"confidence": "0.5", "repetition": "True"},
                {"confidence": "0.05", "repetition": "False"}]
    assert doubtful(from_csv, below=0.1) == [2, 1]


def test_review_folder_trains_after_correction(tiny, tmp_path, capsys):
    model_dir, data_dir = tiny
    review = tmp_path / "review"
    infer.main(["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--max_new_tokens", "40",
                "--review", str(review), "--review_worst", "2"])
    with open(review / "data.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # the looping model's lines are all ended by the repetition stop: all three are written, least confident first
    assert len(rows) == 3 and [r["repetition"] for r in rows] == ["True"] * 3
    assert [float(r["confidence"]) for r in rows] == sorted(float(r["confidence"]) for r in rows)
    for row in rows:
        assert row["text"] == " " * 24  # the model's reading, prefilled
        assert (review / "output_images" / row["image_file"]).read_bytes() == Path(row["source"]).read_bytes()
    # a person corrects the text column; the builder (train.py --data_dir) then loads it
    with open(data_dir / "data.csv", encoding="utf-8") as f:
        truth = {Path(r["image_file"]).name: r["text"] for r in csv.DictReader(f)}
    for row in rows:
        row["text"] = truth[Path(row["source"]).name]
    with open(review / "data.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    splits = load_line_dataset(data_dir=str(review), cache_dir=str(tmp_path / "cache"))  # as train.py --data_dir
    assert sorted(text for split in splits.values() for text in split["text"]) == sorted(truth.values())

    # a folder with files (the corrections) is not written into unless asked
    args = ["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--review", str(review),
            "--review_below", "0.5"]
    with pytest.raises(SystemExit, match="already holds files.*--overwrite_review"):
        infer.main(args)
    assert "नमस्ते दुनिया" in (review / "data.csv").read_text(encoding="utf-8")
    with pytest.raises(SystemExit):
        infer.main(args[:-2])  # --review alone: which lines?
    assert "--review_below" in capsys.readouterr().err


def test_compute_metrics_reads_the_repetition_flag_from_the_generated_ids(tiny):
    """The Trainer's metrics: a row whose text ends in a loop was stopped (catastrophic even when its text is right:
    the stop fires as soon as a loop forms, so such a row never has an end token); a row one token short of a loop,
    ended by <|im_end|>, was not. Padding (-100) after a row is no text."""
    from transformers import EvalPrediction

    from hindi_ocr.training import make_compute_metrics

    _, processor = load_tiny(tiny[0])
    tok = processor.tokenizer
    ka, end = tok.convert_tokens_to_ids(tok.tokenize("क"))[0], tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode([ka]) == "क"
    reference = tok("क" * 24, add_special_tokens=False)["input_ids"] + [end]
    labels = np.array([reference + [-100] * 2, reference + [-100] * 2, reference + [-100] * 2])
    stopped, ended, short = [ka] * 24 + [-100] * 3, [ka] * 23 + [end] + [-100] * 3, [ka] * 12 + [end] + [-100] * 14
    metrics = make_compute_metrics(tok, num_samples=0)(EvalPrediction(np.array([stopped, ended, short]), labels))
    assert metrics["cer"] == pytest.approx((0 + 1 + 12) / 72)
    assert metrics["catastrophic_rate"] == pytest.approx(1 / 3)  # only the stopped row
    assert metrics["median_cer"] == pytest.approx(1 / 24)
    assert metrics["length_ratio"] == pytest.approx((1 + 23 / 24 + 0.5) / 3)


def test_eval_and_test_logs_and_the_card_carry_the_failure_metrics(tiny, tmp_path):
    """A run whose model still loops (a learning rate of ~0): every line is catastrophic, read as nothing."""
    import train

    model_dir, _ = tiny
    data = write_line_folder(tmp_path / "data", ["नमस्ते दुनिया", "भारत एक देश है", "हिंदी भाषा", "किताब पढ़ो",
                                                 "पानी गरम है", "मेरा नाम राम"])
    out = tmp_path / "out"
    train.main(["--model_name_or_path", str(model_dir), "--data_dir", str(data), "--output_dir", str(out),
                "--no_use_lora", "--learning_rate", "1e-12", "--max_steps", "1", "--eval_strategy", "steps",
                "--eval_steps", "1", "--save_strategy", "no", "--report_to", "none", "--max_target_tokens", "32",
                "--dataset_options", "validation_ratio=0.34,test_ratio=0.34", "--per_device_train_batch_size", "2"])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    evals = [r for r in history if "eval_cer" in r]
    test = json.loads((out / "test_results.json").read_text())
    for prefix, metrics in (("eval_", evals[-1]), ("test_", test)):
        assert metrics[prefix + "catastrophic_rate"] == 1.0 and metrics[prefix + "median_cer"] == 1.0
        assert metrics[prefix + "length_ratio"] == 0.0
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| split | lines | CER | WER | grapheme CER | median line CER | catastrophic | length ratio |" in card
    assert "| test | 2 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | 0.0000 |" in card
