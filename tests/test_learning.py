"""A memorisation test: the tiny from-scratch GOT-OCR2 must come to read the very images it trained on.

This is not evidence that a model reads text it has not seen (bench/learning_curve.py measures that, on other
text in other fonts; see BENCHMARKS.md). It shows that the pipeline end to end — `python -m hindi_ocr.tiny` model,
a seed-layout CSV folder of rendered lines, `train.py` (real Trainer), `infer.py` (batched generation) — can fit
images to their text: TestSamples/ holds the training lines themselves, and the bound is CER <= 0.05 on them, for
full fine-tuning from scratch and then for a LoRA adapter that makes that base fit eight lines it never saw.
A model that ignores the image cannot tell the lines apart: its failure mode is "every image decodes to the same
memorised line", CER ~0.7, so the bound (measured: 0.0 in both tests) has a wide margin on both sides.

Measured while building this: a base stopped at 20-50 full fine-tuning steps is still in its image-ignoring phase,
and a LoRA on the language model alone cannot pull it out (CER stays 0.77); a random base or one that already reads
other lines can be adapted (CER 0.0 after 125 steps at lr 1e-3).
"""

import json
import math
import re

import pytest
import torch
from PIL import Image

import infer
import train
from hindi_ocr import compare
from hindi_ocr.examples import OcrExampleBuilder
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model

# Eight short everyday Hindi lines (2-4 words), with a conjunct (क्ष), a nukta (ढ़) and an i-matra (कि).
LINES = [
    "नमस्ते दुनिया",
    "भारत एक देश है",
    "हिंदी भाषा",
    "किताब पढ़ो",
    "पानी गरम है",
    "मेरा नाम राम",
    "क्षेत्र बड़ा है",
    "सुबह की चाय",
]

FONT = "NotoSansDevanagari-Thin"  # thin strokes: the hardest face for a 256-pixel input

# Full fine-tuning from scratch: the rate that makes the tiny model read (1e-3 collapses the image features).
RECIPE = [
    "--learning_rate", "3e-4", "--lr_scheduler_type", "constant_with_warmup", "--warmup_steps", "20",
    "--adam_beta2", "0.98", "--weight_decay", "0", "--max_grad_norm", "1.0",
    "--per_device_train_batch_size", str(len(LINES)), "--gradient_accumulation_steps", "1",
    "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--logging_steps", "25",
    "--max_target_tokens", "32", "--seed", "0",
]


# Other lines, for the adapter to learn on top of a base that reads only LINES.
NEW_LINES = [
    "आज मौसम अच्छा है",
    "बच्चे खेल रहे हैं",
    "दिल्ली बड़ा शहर",
    "मुझे चाय पसंद",
    "नदी का किनारा",
    "रात को तारे",
    "स्कूल की छुट्टी",
    "गाँव में मेला",
]


def run_train(model, data, out, *extra):
    train.main(["--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(out),
                "--dataset_options", "validation_ratio=0", *RECIPE, *extra])
    return json.loads((out / "test_results.json").read_text())["test_cer"]


def infer_cer(capsys, *args, n=len(LINES)):
    """Run infer.py and return (predictions, CER from its last printed line)."""
    capsys.readouterr()
    infer.main(list(args))
    lines = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(r"CER (\S+) WER (\S+) grapheme_CER (\S+) median_CER \S+ catastrophic \S+ length_ratio \S+ \(n=(\d+)\)", lines[-1])
    assert match, lines[-1]
    assert int(match.group(4)) == n
    return [line.split("\t", 1)[1] for line in lines[:-1]], float(match.group(1))


@pytest.fixture(scope="module")
def trained_reader(tmp_path_factory):
    """The tiny model fine-tuned in full from scratch on LINES (200 steps, about a minute on 2 cores)."""
    work = tmp_path_factory.mktemp("learning")
    lines = write_line_folder(work / "lines", LINES, font=FONT, test_samples=True)
    model = build_tiny_model(work / "tiny")
    out = work / "full"
    test_cer = run_train(model, lines, out, "--no_use_lora", "--max_steps", "200")
    return out, lines, test_cer


def test_full_finetuning_memorises_its_training_lines(trained_reader, capsys):
    out, lines, test_cer = trained_reader
    predictions, cer = infer_cer(capsys, "--model_name_or_path", str(out), "--data_dir", str(lines / "TestSamples"))
    assert cer <= 0.05, predictions
    assert cer == pytest.approx(test_cer, abs=1e-6)  # the Trainer's eval and infer.py read alike
    assert len(set(predictions)) == len(LINES)  # every image read as its own line, not one memorised line

    # Generation ends at <|im_end|>: what infer.py's reader generates for a line is the line's target ids and no
    # more (decoding drops special tokens, so the CER alone would not see a reader that runs on to its limit).
    reader = compare.load_reader(str(out), None, max_new_tokens=40)
    builder = OcrExampleBuilder(reader.processor, line_layout=reader.line_layout)
    inputs = builder.prompt_inputs([Image.open(lines / "output_images" / "0.png")])
    with torch.no_grad():
        generated = reader.model.generate(**inputs)[0, inputs["input_ids"].shape[1]:].tolist()
    assert generated == builder.target_ids(LINES[0])


def test_confidence_of_a_reader_is_its_chosen_tokens_probability(trained_reader, tmp_path):
    """On real lines read by a model that reads them (varied tokens, then <|im_end|>): each token's recorded log-prob
    is the teacher-forced one at its own position, and a line's confidence is their geometric mean up to and with the
    end token (hindi_ocr.generation). An untrained model is far less sure of what it writes."""
    from test_failures import check_confidence_positions

    from hindi_ocr.generation import generate_lines

    out, lines, _ = trained_reader
    reader = compare.load_reader(str(out), None, max_new_tokens=40)
    builder = OcrExampleBuilder(reader.processor, line_layout=reader.line_layout)
    inputs = builder.prompt_inputs([Image.open(lines / "output_images" / f"{i}.png") for i in range(len(LINES))])
    expected, new_tokens = check_confidence_positions(reader.model, reader.processor, inputs)
    assert len(set(new_tokens[0].tolist())) > 3  # a shifted position would read another token's probability
    generated = generate_lines(reader.model, dict(inputs), reader.processor.tokenizer)
    end = builder.end_of_turn_id
    for line, row, ids in zip(generated, expected, new_tokens.tolist()):
        used = ids.index(end) + 1
        assert not line.repetition
        assert line.confidence == pytest.approx(math.exp(row[:used].double().mean()), rel=1e-5)
        assert line.confidence > 0.9  # it memorised these lines (measured: 0.99 and more)


def test_lora_makes_a_briefly_trained_base_memorise_new_lines(trained_reader, tmp_path, capsys):
    base, _, _ = trained_reader
    new_lines = write_line_folder(tmp_path / "new_lines", NEW_LINES, font=FONT, test_samples=True)
    _, base_cer = infer_cer(capsys, "--model_name_or_path", str(base), "--data_dir", str(new_lines / "TestSamples"))
    assert base_cer > 0.3  # the base has never seen these lines: the adapter must do the work (measured 0.80)

    # Default targets (the language model's projections); LoRA wants a higher rate than full fine-tuning. The
    # adapter trains on folded lines (--line_layout fold): infer.py must read the layout from hindi_ocr.json.
    adapter = tmp_path / "adapter"
    run_train(base, new_lines, adapter, "--max_steps", "125", "--learning_rate", "1e-3",
              "--lora_r", "16", "--lora_alpha", "32", "--lora_dropout", "0", "--line_layout", "fold")
    assert json.loads((adapter / "hindi_ocr.json").read_text()) == {"line_layout": "fold", "lines_per_page": 1}
    predictions, cer = infer_cer(capsys, "--adapter", str(adapter), "--data_dir", str(new_lines / "TestSamples"))
    assert cer <= 0.05, predictions
    _, squashed_cer = infer_cer(capsys, "--adapter", str(adapter), "--data_dir", str(new_lines / "TestSamples"),
                                "--line_layout", "squash")
    assert squashed_cer > 0.3  # read in another layout than it was trained with, it fails (measured 0.89)


def test_load_best_model_at_end_keeps_the_lowest_validation_cer(tmp_path, capsys):
    """The smoke config keeps its best checkpoint by validation CER: in a run whose validation CER (on held-out
    lines) changes from one evaluation to the next, the model left in output_dir is the checkpoint with the lowest
    CER in trainer_state.json, and test_results.json is that model's reading of the test split."""
    lines = write_line_folder(tmp_path / "lines", LINES + NEW_LINES[:4], font=FONT, test_samples=True)
    out = tmp_path / "best"
    test_cer = run_train(build_tiny_model(tmp_path / "tiny"), lines, out, "--no_use_lora", "--max_steps", "120",
                         "--eval_strategy", "steps", "--eval_steps", "30", "--save_strategy", "steps",
                         "--save_steps", "30", "--load_best_model_at_end", "true",
                         "--dataset_options", "validation_ratio=0.25,test_ratio=0")
    state = json.loads((out / "trainer_state.json").read_text())
    evals = {record["step"]: record["eval_cer"] for record in state["log_history"] if "eval_cer" in record}
    assert sorted(evals) == [30, 60, 90, 120] and len(set(evals.values())) > 1, evals  # distinguishable evaluations
    best = min(evals, key=lambda step: (evals[step], step))
    assert (state["best_metric"], state["best_model_checkpoint"]) == (evals[best], str(out / f"checkpoint-{best}"))
    kept = (out / "model.safetensors").read_bytes()
    assert kept == (out / f"checkpoint-{best}" / "model.safetensors").read_bytes()
    assert [step for step in evals if (out / f"checkpoint-{step}" / "model.safetensors").read_bytes() == kept] == [best]
    _, cer = infer_cer(capsys, "--model_name_or_path", str(out), "--data_dir", str(lines / "TestSamples"), n=12)
    assert cer == float(f"{test_cer:.4f}")  # infer.py prints 4 decimals
