"""The quick start adapts the shipped reader: a short version of configs/smoke.yaml (LoRA and the projector on the reader
that ``python -m hindi_ocr.reader`` writes, lines in a face it never saw) must bring the validation CER down from its
step-0 value by a measured margin.

Same model, adapter, data design, layout and optimiser as the README's quick start (configs/smoke.yaml, read here,
not copied); only the size of the task is cut so that it runs in about two minutes: SHORT_STEPS optimiser steps
and fewer validation lines. Validation lines are word sequences that are not among the training lines. Measured
values are in BENCHMARKS.md ("The quick start: LoRA on the reader").
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

import train
from hindi_ocr.arguments import parse_options

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "configs" / "smoke.yaml"
SHORT_STEPS = 300
SHORT_DATA = {"train_lines": 2000, "validation_lines": 32, "test_lines": 8}
# Measured (2026-12-04, 2 cores, 115 s): validation CER 0.307, 0.171, 0.140 at steps 0, 150, 300.
CER_BOUND = 0.22
MIN_FALL = 0.10


def test_short_quick_start_adapts_the_reader(tmp_path, capsys):
    recipe = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    assert recipe["use_lora"] is True and recipe["eval_on_start"] is True
    reader = tmp_path / "hindi-reader"
    done = subprocess.run([sys.executable, "-m", "hindi_ocr.reader", str(reader)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    options = {**parse_options(recipe["dataset_options"]), **SHORT_DATA}
    out = tmp_path / "smoke"
    train.main([str(SMOKE), "--model_name_or_path", str(reader), "--output_dir", str(out),
                "--dataset_options", ",".join(f"{k}={v}" for k, v in options.items()),
                "--max_steps", str(SHORT_STEPS), "--eval_steps", str(SHORT_STEPS // 2),
                "--save_strategy", "no", "--load_best_model_at_end", "false", "--report_to", "none"])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    cers = [(row["step"], row["eval_cer"]) for row in history if "eval_cer" in row]
    assert [step for step, _ in cers] == [0, SHORT_STEPS // 2, SHORT_STEPS], cers  # evaluated from step 0
    assert cers[0][1] - cers[-1][1] >= MIN_FALL, cers  # the adapter teaches the reader the new face...
    assert cers[-1][1] <= CER_BOUND, cers  # ...on lines it never trained on
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()  # a LoRA adapter
    test_cer = json.loads((out / "test_results.json").read_text())["test_cer"]
    last = capsys.readouterr().out.strip().splitlines()[-1]  # the run's last line says how well it reads
    assert last.startswith(f"Done: adapter in {out}/") and last.endswith(f", test CER {test_cer:.3f}"), last
