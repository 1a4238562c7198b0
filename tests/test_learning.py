"""Proof that training learns: the tiny from-scratch GOT-OCR2 must come to read its training lines.

Runs the real pipeline end to end — `python -m hindi_ocr.tiny` model, a seed-layout CSV folder of rendered lines,
`train.py` (real Trainer), `infer.py` (batched generation) — and asserts CER <= 0.05 on the lines it trained on.
Overfitting a handful of lines is the point: a model that ignores the image cannot tell them apart (the failure
mode is "every image decodes to the same memorised line", CER ~0.7).
"""

import csv
import json
import re
import shutil

import pytest

import infer
import train
from hindi_ocr.render import devanagari_fonts, render_line
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

# Full fine-tuning from scratch: the rate that makes the tiny model read (1e-3 collapses the image features).
RECIPE = [
    "--learning_rate", "3e-4", "--lr_scheduler_type", "constant_with_warmup", "--warmup_steps", "20",
    "--adam_beta2", "0.98", "--weight_decay", "0", "--max_grad_norm", "1.0",
    "--per_device_train_batch_size", str(len(LINES)), "--gradient_accumulation_steps", "1",
    "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--logging_steps", "25",
    "--max_target_tokens", "32", "--seed", "0",
]


@pytest.fixture(scope="module")
def line_folder(tmp_path_factory):
    """Seed layout with the same lines as train and TestSamples, so the test split scores what was learned."""
    root = tmp_path_factory.mktemp("lines")
    font = devanagari_fonts("Noto Sans Devanagari")[0]
    (root / "output_images").mkdir()
    with open(root / "data.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_file", "text"])
        for i, text in enumerate(LINES):
            render_line(text, font, size=32).save(root / "output_images" / f"{i}.png")
            writer.writerow([f"{i}.png", text])
    test_dir = root / "TestSamples"
    test_dir.mkdir()
    shutil.copy(root / "data.csv", test_dir / "data.csv")
    shutil.copytree(root / "output_images", test_dir / "output_images")
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def run_train(model, data, out, *extra):
    train.main(["--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(out),
                "--dataset_options", "validation_ratio=0", *RECIPE, *extra])
    return json.loads((out / "test_results.json").read_text())["test_cer"]


def infer_cer(capsys, *args):
    """Run infer.py and return (predictions, CER from its last printed line)."""
    capsys.readouterr()
    infer.main(list(args))
    lines = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(r"CER (\S+) WER (\S+) grapheme_CER (\S+) \(n=(\d+)\)", lines[-1])
    assert match, lines[-1]
    assert int(match.group(4)) == len(LINES)
    return [line.split("\t", 1)[1] for line in lines[:-1]], float(match.group(1))


def test_full_finetuning_reads_its_lines(tiny_model, line_folder, tmp_path, capsys):
    out = tmp_path / "full"
    test_cer = run_train(tiny_model, line_folder, out, "--no_use_lora", "--max_steps", "200")
    predictions, cer = infer_cer(capsys, "--model_name_or_path", str(out),
                                 "--data_dir", str(line_folder / "TestSamples"))
    assert cer <= 0.05, predictions
    assert cer == pytest.approx(test_cer, abs=1e-6)  # the Trainer's eval and infer.py read alike
    assert len(set(predictions)) == len(LINES)  # every image read as its own line, not one memorised line


def test_lora_on_a_briefly_trained_base_reads_its_lines(tiny_model, line_folder, tmp_path, capsys):
    base = tmp_path / "base"
    base_cer = run_train(tiny_model, line_folder, base, "--no_use_lora", "--max_steps", "60")
    assert base_cer > 0.2  # the base does not read yet: the adapter must do the work

    adapter = tmp_path / "adapter"
    run_train(base, line_folder, adapter, "--max_steps", "200", "--learning_rate", "3e-3",
              "--lora_r", "16", "--lora_alpha", "32", "--lora_dropout", "0", "--lora_vision", "--train_projector")
    assert (adapter / "adapter_model.safetensors").is_file()
    predictions, cer = infer_cer(capsys, "--adapter", str(adapter), "--data_dir", str(line_folder / "TestSamples"))
    assert cer <= 0.05, predictions
