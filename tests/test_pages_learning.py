"""Memorisation with pages: the tiny from-scratch GOT-OCR2 (256x256, 16 image tokens), trained through train.py
on pages of 2 lines, reads its 16 training lines back with infer.py, in pages and each line alone on a page.

Pages are regrouped every epoch (here every step), so the model cannot recall page texts: it must read each row.
Reading a lone line is the harder half: in training every line sat among others at varied positions, and only the
short pages showed where a page's text ends. Measured while building this (shared 2-core CPU): the loss sat in the
image-ignoring phase (~0.4) until step ~500, then fell to 0.02 at 700 and 0.008 at 800; at 1000 steps both
readings had CER 0. Pages of 4 at 512x512 (64 tokens) were still at loss 0.45 after 300 steps (~3 s a step).
"""

import json
import re

import pytest

import infer
import train
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model

LINES = [
    "नमस्ते दुनिया", "भारत एक देश है", "हिंदी भाषा", "किताब पढ़ो",
    "पानी गरम है", "मेरा नाम राम", "क्षेत्र बड़ा है", "सुबह की चाय",
    "आज मौसम अच्छा है", "बच्चे खेल रहे हैं", "दिल्ली बड़ा शहर", "मुझे चाय पसंद",
    "नदी का किनारा", "रात को तारे", "स्कूल की छुट्टी", "गाँव में मेला",
]
PER_PAGE = 2

# The recipe that makes the tiny model read (tests/test_learning.py); every page of an epoch in one batch.
RECIPE = [
    "--no_use_lora", "--learning_rate", "3e-4", "--lr_scheduler_type", "constant_with_warmup", "--warmup_steps", "20",
    "--adam_beta2", "0.98", "--weight_decay", "0", "--max_grad_norm", "1.0",
    "--per_device_train_batch_size", "9", "--gradient_accumulation_steps", "1",  # 16 lines -> 9 training pages
    "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--logging_steps", "100",
    "--max_target_tokens", "32", "--seed", "0", "--lines_per_page", str(PER_PAGE),
]


def infer_run(capsys, *args):
    """(predictions, CER, stderr) of one infer.py run."""
    capsys.readouterr()
    infer.main(list(args))
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    match = re.fullmatch(r"CER (\S+) WER (\S+) grapheme_CER (\S+) median_CER \S+ catastrophic \S+ length_ratio \S+ \(n=(\d+)\)", lines[-1])
    assert match, lines[-1]
    assert int(match.group(4)) == len(LINES)
    return [line.split("\t", 1)[1] for line in lines[:-1]], float(match.group(1)), captured.err


@pytest.fixture(scope="module")
def page_reader(tmp_path_factory):
    work = tmp_path_factory.mktemp("pages_learning")
    lines = write_line_folder(work / "lines", LINES, test_samples=True)
    model = build_tiny_model(work / "tiny")
    out = work / "run"
    train.main(["--model_name_or_path", str(model), "--data_dir", str(lines), "--output_dir", str(out),
                "--dataset_options", "validation_ratio=0", "--max_steps", "800", *RECIPE])
    return out, lines


def test_pages_read_their_lines(page_reader, capsys):
    out, lines = page_reader
    results = json.loads((out / "test_results.json").read_text())
    predictions, cer, err = infer_run(capsys, "--model_name_or_path", str(out), "--data_dir",
                                      str(lines / "TestSamples"))
    assert cer <= 0.05, predictions
    assert cer == pytest.approx(results["test_cer"], abs=1e-6)  # the Trainer's page eval and infer.py agree
    assert "16 lines read in 8 pages; 0 pages read again" in err


def test_a_page_trained_model_reads_a_lone_line(page_reader, capsys):
    out, lines = page_reader
    predictions, cer, err = infer_run(capsys, "--model_name_or_path", str(out), "--lines_per_page", "1",
                                      "--data_dir", str(lines / "TestSamples"))
    assert cer <= 0.05, predictions
    assert "16 lines read in 16 pages" in err
