"""A run whose loss goes non-finite stops at once with exit code 1 and a message naming the step, the value and what
to try; the checkpoints already written stay byte-for-byte as they were and nothing broken is saved.

Two real ways to get there: an absurd learning rate, and resuming onto a base model with a corrupted weight (a NaN
in the language model's final norm, as a bad download or a bad merge leaves)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import train
from hindi_ocr.checkpoints import checkpoint_problem
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
LINES = ["नमस्ते दुनिया", "भारत एक देश है", "किताब पढ़ो", "पानी गरम है"]
RECIPE = ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--seed", "7", "--lora_r", "4",
          "--eval_strategy", "no", "--report_to", "none", "--logging_steps", "1", "--max_target_tokens", "16",
          "--lr_scheduler_type", "constant", "--dataset_options", "validation_ratio=0,test_ratio=0"]
HINT = ("Try: a lower --learning_rate than {lr} in a fresh run (a new --output_dir, or --overwrite_output_dir); fp32 "
        "is already in use here, so check the data and the base model too; or --resume_from_checkpoint {last} to go "
        "on from there (a resumed run keeps that run's learning rate and optimizer state).")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    model = build_tiny_model(root / "tiny")
    poisoned = root / "tiny-poisoned"
    shutil.copytree(model, poisoned)
    weights = load_file(poisoned / "model.safetensors")
    weights["language_model.model.norm.weight"][0] = float("nan")
    save_file(weights, poisoned / "model.safetensors", metadata={"format": "pt"})
    return model, poisoned, write_line_folder(root / "data", LINES, size=20)


def flags(model, data, out, *extra):
    return ["--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(out), *RECIPE, *extra]


def train_cli(*args) -> subprocess.CompletedProcess:
    env_offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, env={**os.environ, **env_offline},
                          capture_output=True, text=True, timeout=600)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_absurd_learning_rate_stops_at_the_first_nan_and_keeps_the_checkpoint_before(base, tmp_path):
    model, _, data = base
    out = tmp_path / "out"
    # Logs every 5 steps, saves every step: the guard makes each save follow a log, so no save escapes the check.
    done = train_cli(*flags(model, data, out, "--learning_rate", "1e20", "--max_steps", "6", "--save_steps", "1",
                            "--logging_steps", "5"))
    assert done.returncode == 1, done.stderr[-3000:]
    last = out / "checkpoint-1"
    assert done.stderr.rstrip().splitlines()[-1] == (
        f"Training stopped at step 2: the training loss is nan (gradient norm nan). The last checkpoint, {last} "
        "(saved with a finite loss and weights), is untouched; nothing from step 2 on was saved or pushed. "
        + HINT.format(lr="1e+20", last=last))
    assert "{'loss': 'nan', 'grad_norm': 'nan'" in done.stderr + done.stdout  # the bad step is still logged
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1"]  # no checkpoint-2, no final adapter
    assert checkpoint_problem(last) is None
    weights = load_file(last / "adapter_model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_nan_validation_loss_alone_stops_the_run(base, tmp_path):
    """One update at an absurd learning rate: the logged training loss and gradient norm of that step are finite,
    the evaluation right after it (on the updated weights) gives a NaN validation loss, and that alone stops the run
    (without it the run would go on to step 2, where the training loss is NaN too)."""
    model, _, data = base
    out = tmp_path / "out"
    done = train_cli(*flags(model, data, out, "--learning_rate", "1e20", "--max_steps", "4", "--save_steps", "100",
                            "--eval_strategy", "steps", "--eval_steps", "1",
                            "--dataset_options", "validation_ratio=0.25,test_ratio=0"))
    assert done.returncode == 1, done.stderr[-3000:]
    logs = done.stderr + done.stdout
    assert re.search(r"\{'loss': '[0-9.]+', 'grad_norm': '[0-9.]+'", logs)  # step 1's training log: finite
    assert "{'eval_loss': 'nan', " in logs and "{'loss': 'nan'" not in logs
    assert done.stderr.rstrip().splitlines()[-1] == (
        "Training stopped at step 1: the validation loss is nan. No checkpoint had been saved yet; nothing from step 1 "
        "on was saved or pushed. Try: a lower --learning_rate than 1e+20 in a fresh run (a new --output_dir, or "
        "--overwrite_output_dir); fp32 is already in use here, so check the data and the base model too.")
    assert not out.exists() or not any(out.iterdir())  # nothing saved


def test_resume_onto_a_corrupted_base_stops_and_leaves_the_run_byte_for_byte(base, tmp_path):
    model, poisoned, data = base
    out = tmp_path / "run"
    train.main(flags(model, data, out, "--learning_rate", "1e-3", "--max_steps", "2", "--save_steps", "2"))
    before = snapshot(out)
    assert "checkpoint-2/adapter_model.safetensors" in before and "adapter_model.safetensors" in before

    done = train_cli(*flags(poisoned, data, out, "--learning_rate", "1e-3", "--max_steps", "4", "--save_steps", "1",
                            "--resume_from_checkpoint", "true"))
    assert done.returncode == 1, done.stderr[-3000:]
    last = out / "checkpoint-2"
    assert done.stderr.rstrip().splitlines()[-1] == (
        f"Training stopped at step 3: the training loss is nan (gradient norm nan). The last checkpoint, {last} "
        "(saved with a finite loss and weights), is untouched; nothing from step 3 on was saved or pushed. "
        + HINT.format(lr="0.001", last=last))
    assert snapshot(out) == before  # nothing written, replaced or deleted: same names, same bytes


def test_data_parallel_processes_stop_together(base, tmp_path):
    """Under torchrun every process sees the same logged (all-reduced) loss and the same weight verdict, so all stop
    at the same step: no process waits in a collective for one that left."""
    model, _, data = base
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "train.py",
         *flags(model, data, out, "--learning_rate", "1e20", "--max_steps", "4", "--save_steps", "1",
                "--logging_steps", "5", "--per_device_train_batch_size", "1")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    stops = re.findall(r"^Training stopped at step (\d+): the training loss is nan", done.stderr, re.M)
    assert stops and set(stops) == {"2"}
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1"]


def test_guard_fed_made_up_fp16_overflow_logs_tolerates_two_in_a_row_and_stops_at_three(tmp_path):
    """Made-up (loss, grad_norm) logs fed to the guard's on_log, no training run (no fp16 here): with --fp16 the loss
    scaler skips an update whose gradients hold an inf or NaN (an inf gradient norm, or a NaN loss from an fp16
    overflow) and lowers its scale; a few such logs are normal, three in a row are not."""
    from transformers import TrainerControl, TrainerState

    from hindi_ocr.guard import NonFiniteGuard

    def feed(guard, logs):
        state, control = TrainerState(), TrainerControl()
        for step, (loss, grad_norm) in enumerate(logs, start=1):
            state.global_step = step
            control = guard.on_log(None, state, control, logs={"loss": loss, "grad_norm": grad_norm})
            if control.should_training_stop:
                return step
        return None

    inf, nan = float("inf"), float("nan")
    fp16 = NonFiniteGuard(str(tmp_path), 2e-5, ["--fp16"], loss_scaling=True)
    assert feed(fp16, [(2.5, inf), (2.5, inf), (2.4, 1.0), (nan, nan), (2.3, inf), (2.2, 0.5)]) is None
    assert fp16.message is None
    assert feed(fp16, [(2.5, inf), (2.5, inf), (2.5, inf)]) == 3
    assert fp16.message == (
        "Training stopped at step 3: the gradient norm is inf in 3 logs in a row (the fp16 loss scaler skipped those "
        "updates, but they did not stop). No checkpoint had been saved yet; nothing from step 3 on was saved or "
        "pushed. Try: a lower --learning_rate than 2e-05 in a fresh run (a new --output_dir, or "
        "--overwrite_output_dir); drop --fp16 to train in fp32 (slower, but it does not overflow where 16-bit does).")
    assert feed(NonFiniteGuard(str(tmp_path), 2e-5, ["--fp16"], loss_scaling=True),
                [(nan, nan), (nan, nan), (nan, nan)]) == 3
    # Without a loss scaler nothing skips an update: the first non-finite value stops the run.
    assert feed(NonFiniteGuard(str(tmp_path), 2e-5), [(2.5, 1.0), (2.5, inf)]) == 2


def test_a_save_that_only_the_best_evaluation_triggers_follows_the_guard(base, tmp_path):
    """--save_strategy best: the Trainer decides to save after an evaluation, past the guard's pre-save check. An
    absurd learning rate gives a finite loss at step 1 and a NaN validation loss right after: the run stops there and
    the evaluation that stopped it does not get saved as the best checkpoint."""
    model, _, data = base
    out = tmp_path / "best"
    done = train_cli(*flags(model, data, out, "--learning_rate", "1e20", "--max_steps", "3", "--eval_strategy",
                            "steps", "--eval_steps", "1", "--save_strategy", "best", "--logging_steps", "5",
                            "--dataset_options", "validation_ratio=0.25,test_ratio=0"))
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.rstrip().splitlines()[-1].startswith(
        "Training stopped at step 1: the validation loss is nan. No checkpoint had been saved yet; nothing from step 1 "
        "on was saved or pushed.")
    assert not out.exists() or not list(out.glob("checkpoint-*"))


def test_with_save_strategy_best_the_weights_are_checked_before_each_evaluation(tmp_path):
    """The guard checks the weights before a save; with --save_strategy best any evaluation may end in one."""
    from transformers import Seq2SeqTrainingArguments, TrainerControl, TrainerState

    from hindi_ocr.guard import NonFiniteGuard

    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.bias[1] = float("nan")
    guard = NonFiniteGuard(str(tmp_path), 1e-3)
    args = Seq2SeqTrainingArguments(str(tmp_path), eval_strategy="steps", save_strategy="best",
                                    metric_for_best_model="loss", report_to=[])
    guard.on_step_end(args, TrainerState(), TrainerControl(should_evaluate=True), model=model)
    assert guard.bad_weight == "bias"
    control = guard.on_log(args, TrainerState(global_step=1), TrainerControl(should_evaluate=True), logs={"loss": 1.0})
    assert control.should_training_stop and not control.should_evaluate and not control.should_save
    assert guard.message.startswith("Training stopped at step 1: the trainable weight bias is not finite")


def test_the_weight_check_reads_each_processs_shard():
    """Under DeepSpeed ZeRO-3 a parameter outside a forward pass is an empty placeholder and this process's part of
    it is ``ds_tensor`` (DeepSpeed is not installed here: a parameter laid out the same way stands in for one)."""
    from hindi_ocr.guard import nonfinite_weights

    model = torch.nn.Linear(2, 2)
    placeholder = model.weight
    placeholder.data = torch.empty(0)
    placeholder.ds_tensor = torch.tensor([1.0, float("nan")])
    assert nonfinite_weights(model) == "weight"
    placeholder.ds_tensor = torch.tensor([1.0, 2.0])
    assert nonfinite_weights(model) is None
