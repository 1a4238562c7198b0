"""The quick start learns to read: a short version of configs/smoke.yaml, from a fresh tiny model, must bring the
validation CER on lines it never trained on below a bound measured on this machine (with margin).

Same model, data design, layout and optimiser as the README's quick start (configs/smoke.yaml, read here, not
copied); only the size of the task is cut so that it runs in two to three minutes: a 20-word vocabulary instead of 50
and SHORT_STEPS optimiser steps. The validation lines are word sequences that are not among the training lines
(the builder draws distinct lines for all splits), so a model that ignores the image or recalls training lines
stays near CER 1 (an untrained model scores 1.0). Measured values are in BENCHMARKS.md ("Learning curve").
"""

import json
from pathlib import Path

import yaml

import train
from hindi_ocr.tiny import build_tiny_model
from hindi_ocr.arguments import parse_options

SMOKE = Path(__file__).resolve().parent.parent / "configs" / "smoke.yaml"
SHORT_STEPS = 900
SHORT_DATA = {"vocabulary": 20, "train_lines": 1000, "validation_lines": 32, "test_lines": 8}
# Measured (2026-12-01, 2 shared cores, ~2.5 minutes): validation CER 0.735, 0.474, 0.248 at steps 300, 600, 900.
CER_BOUND = 0.40
MIN_FALL = 0.25


def test_short_quick_start_reads_unseen_lines(tmp_path, capsys):
    recipe = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    options = {**parse_options(recipe["dataset_options"]), **SHORT_DATA}
    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "smoke"
    train.main([str(SMOKE), "--model_name_or_path", str(model), "--output_dir", str(out),
                "--dataset_options", ",".join(f"{k}={v}" for k, v in options.items()),
                "--max_steps", str(SHORT_STEPS), "--eval_steps", str(SHORT_STEPS // 3),
                "--save_strategy", "no", "--load_best_model_at_end", "false", "--report_to", "none"])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    cers = [row["eval_cer"] for row in history if "eval_cer" in row]
    assert len(cers) == 3
    assert cers[0] - cers[-1] >= MIN_FALL, cers  # it learns to read during the run...
    assert cers[-1] <= CER_BOUND, cers  # ...lines it never trained on
    test_cer = json.loads((out / "test_results.json").read_text())["test_cer"]
    last = capsys.readouterr().out.strip().splitlines()[-1]  # the run's last line says how well it reads
    assert last.startswith(f"Done: model in {out}/") and last.endswith(f", test CER {test_cer:.3f}"), last
