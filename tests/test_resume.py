"""Interrupted training: a run killed with SIGKILL after a checkpoint resumes to the same adapter as a run that was
never stopped, whether --resume_from_checkpoint names the folder or says true; half-written checkpoints are skipped
(true) or refused (named) with a message."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from hindi_ocr.checkpoints import checkpoint_problem, resume_point
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
LINES = ["नमस्ते दुनिया", "भारत एक देश है", "किताब पढ़ो", "पानी गरम है"]
ADAPTER = "adapter_model.safetensors"
STEPS = 4
# A high learning rate, so that two missing or repeated steps (or a lost optimizer/scheduler state) move the
# adapter far beyond the comparison tolerance; LoRA dropout stays on, so the RNG state must be restored too.
RECIPE = ["--max_steps", str(STEPS), "--save_steps", "2", "--learning_rate", "5e-3", "--lora_r", "4",
          "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--seed", "7",
          "--eval_strategy", "no", "--report_to", "none", "--logging_steps", "1", "--max_target_tokens", "16",
          "--dataset_options", "validation_ratio=0,test_ratio=0"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny base, a CSV folder of rendered lines, and an uninterrupted reference run."""
    root = tmp_path_factory.mktemp("resume")
    model = build_tiny_model(root / "tiny")
    data = write_line_folder(root / "data", LINES, size=20)
    reference = root / "reference"
    train.main(flags(model, data, reference))
    return model, data, reference


def flags(model, data, out, *extra):
    return ["--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(out), *RECIPE, *extra]


def assert_same_adapter(got: Path, want: Path):
    got, want = load_file(got / ADAPTER), load_file(want / ADAPTER)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


# train.py with one callback added: once checkpoint-2 is saved (Trainer.on_save comes after the whole folder is
# written) it says so on stdout and waits to be killed, so the kill lands exactly at that checkpoint boundary.
HOLD_AT_CHECKPOINT = """
import sys, threading
import transformers
from hindi_ocr import training

class Hold(transformers.TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 2:
            print("HOLDING AT checkpoint-2", flush=True)
            threading.Event().wait()

def build_holding_trainer(*args, build=training.build_trainer, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.add_callback(Hold())
    return trainer

training.build_trainer = build_holding_trainer
import train  # after the patch: train.py imports build_trainer by name
train.main(sys.argv[1:])
"""


def kill_after_first_checkpoint(model, data, out, log: Path) -> None:
    """train.py in a subprocess, SIGKILLed while it waits at checkpoint-2 (a kill gives no chance to clean up)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", HOLD_AT_CHECKPOINT, *flags(model, data, out)], cwd=REPO,
                                env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            for line in proc.stdout:  # blocks until the child holds at the checkpoint, or ends
                if line.strip() == "HOLDING AT checkpoint-2":
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (out / "checkpoint-4").exists() and not (out / ADAPTER).exists()  # stopped at step 2, not later


def test_killed_run_resumes_to_the_uninterrupted_adapter(setup, tmp_path, caplog):
    model, data, reference = setup
    out = tmp_path / "killed"
    kill_after_first_checkpoint(model, data, out, tmp_path / "killed.log")
    again = tmp_path / "killed_again"
    shutil.copytree(out, again)

    # The kill left checkpoint-2 whole; here are two that a kill during a later save (or a full disk) leaves.
    cut = again / "checkpoint-98"
    shutil.copytree(again / "checkpoint-2", cut)
    (cut / "trainer_state.json").unlink()
    short = again / "checkpoint-99"
    shutil.copytree(again / "checkpoint-2", short)
    data_bytes = (short / ADAPTER).read_bytes()
    (short / ADAPTER).write_bytes(data_bytes[: len(data_bytes) // 2])

    train.main(flags(model, data, out, "--resume_from_checkpoint", str(out / "checkpoint-2")))
    assert_same_adapter(out, reference)

    with caplog.at_level(logging.WARNING, logger="hindi_ocr.checkpoints"):
        train.main(flags(model, data, again, "--resume_from_checkpoint", "true"))
    assert_same_adapter(again, reference)
    skipped = [r.getMessage() for r in caplog.records if r.name == "hindi_ocr.checkpoints"]
    assert skipped[:2] == [
        f"skipping {short}: {ADAPTER} is {len(data_bytes) // 2} bytes, its header says {len(data_bytes)} (cut "
        "short) (a save was interrupted); trying the one before",
        f"skipping {cut}: missing trainer_state.json (a save was interrupted); trying the one before",
    ]

    # The tolerance above tells runs apart: the checkpoint two steps short is far from the final adapter.
    with pytest.raises(AssertionError):
        assert_same_adapter(reference / "checkpoint-2", reference)


def test_incomplete_checkpoints_are_told_apart_and_named(setup, tmp_path):
    _, _, reference = setup
    complete = reference / "checkpoint-2"
    assert checkpoint_problem(complete) is None and checkpoint_problem(reference / "checkpoint-4") is None

    def broken(name, damage):
        folder = tmp_path / "run" / name
        shutil.copytree(complete, folder)
        damage(folder)
        return checkpoint_problem(folder)

    def cut(file, keep):
        return lambda folder: (folder / file).write_bytes((folder / file).read_bytes()[:keep])

    assert broken("checkpoint-3", lambda f: (f / "optimizer.pt").unlink()) == "missing optimizer.pt"
    assert broken("checkpoint-4", lambda f: (f / "rng_state.pth").unlink()) == "missing rng_state.pth"
    assert broken("checkpoint-5", lambda f: (f / ADAPTER).unlink()) == (
        "missing adapter_model.safetensors or model.safetensors")
    assert broken("checkpoint-6", cut("optimizer.pt", 1000)) == (
        "optimizer.pt is cut short (no zip directory at its end)")
    assert broken("checkpoint-7", cut("trainer_state.json", 20)) == "trainer_state.json is not valid JSON (cut short)"
    assert broken("checkpoint-8", cut(ADAPTER, 4)).startswith(f"{ADAPTER} has no readable safetensors header")
    full = (complete / ADAPTER).stat().st_size
    assert broken("checkpoint-9", cut(ADAPTER, full - 1)) == (
        f"{ADAPTER} is {full - 1} bytes, its header says {full} (cut short)")  # one byte short: header intact
    shutil.copytree(complete, tmp_path / "run" / "checkpoint-1")

    run = tmp_path / "run"
    with pytest.raises(SystemExit) as caught:
        resume_point(str(run / "checkpoint-6"), str(run))
    assert str(caught.value) == (
        f"--resume_from_checkpoint {run / 'checkpoint-6'}: cannot resume from it: optimizer.pt is cut short (no zip "
        "directory at its end) (a save interrupted by a kill or a full disk leaves such a folder); the newest "
        f"complete one beside it is {run / 'checkpoint-1'}: pass that, or true")
    assert resume_point("true", str(run)) == str(run / "checkpoint-1")
    assert resume_point("checkpoint-1", str(run)) == str(run / "checkpoint-1")  # a bare name is looked up in run
    assert resume_point("false", str(run)) is None and resume_point(None, str(run)) is None

    shutil.rmtree(run / "checkpoint-1")
    with pytest.raises(SystemExit, match=f"^--resume_from_checkpoint true: no complete checkpoint-N folder in "
                                         f"--output_dir {run}; drop the flag"):
        resume_point("true", str(run))
    with pytest.raises(SystemExit, match=f"^--resume_from_checkpoint {tmp_path / 'nowhere'}: no such folder"):
        resume_point(str(tmp_path / "nowhere"), str(run))


def test_resuming_with_another_page_format_is_refused_naming_both_values(setup, tmp_path):
    """A run keeps its input format: a page-trained checkpoint resumed without --lines_per_page (the next Kaggle
    session's command with the flag left out) would otherwise go on as single lines without a word."""
    model, data, reference = setup
    assert json.loads((reference / "checkpoint-2" / "hindi_ocr.json").read_text()) == {
        "line_layout": "squash", "lines_per_page": 1}
    checkpoint = str(reference / "checkpoint-2")
    with pytest.raises(SystemExit) as caught:
        train.main(flags(model, data, tmp_path / "a", "--resume_from_checkpoint", checkpoint, "--lines_per_page", "2"))
    assert str(caught.value) == (
        f"--lines_per_page 2, but --resume_from_checkpoint {checkpoint} was trained with --lines_per_page 1 "
        "(hindi_ocr.json); resume with --lines_per_page 1, or start a new run in another --output_dir")

    paged = tmp_path / "paged" / "checkpoint-2"
    shutil.copytree(reference / "checkpoint-2", paged)
    (paged / "hindi_ocr.json").write_text(json.dumps({"line_layout": "squash", "lines_per_page": 8}))
    with pytest.raises(SystemExit, match=re.escape(f"--lines_per_page 1, but --resume_from_checkpoint {paged} was "
                                                   "trained with --lines_per_page 8 (hindi_ocr.json)")):
        train.main(flags(model, data, tmp_path / "paged", "--resume_from_checkpoint", "true"))
    (paged / "hindi_ocr.json").write_text(json.dumps({"line_layout": "letterbox", "lines_per_page": 1}))
    with pytest.raises(SystemExit, match=re.escape(f"--line_layout squash, but --resume_from_checkpoint {paged} was "
                                                   "trained with --line_layout letterbox")):
        train.main(flags(model, data, tmp_path / "paged", "--resume_from_checkpoint", "true"))
    assert not (tmp_path / "a").exists()


def test_each_checkpoint_holds_its_reading_settings_before_the_trainer_uploads_it(setup, tmp_path):
    """The Trainer uploads a checkpoint (--push_to_hub) at the end of its save, before any on_save callback runs:
    hindi_ocr.json must already be in the folder by then, or last-checkpoint/ on the Hub lacks it."""
    from hindi_ocr.arguments import parse_args
    from hindi_ocr.training import build_model_and_processor, build_trainer, load_datasets

    model, data, _ = setup
    out = tmp_path / "out"
    model_args, data_args, lora_args, training_args = parse_args(
        flags(model, data, out, "--lines_per_page", "2", "--save_only_model", "true"))
    trainer_model, processor = build_model_and_processor(model_args, lora_args, training_args, max_new_tokens=8)
    trainer = build_trainer(trainer_model, processor, load_datasets(data_args), data_args, training_args)
    trainer.state.global_step = 3
    trainer._save_checkpoint(trainer.model, None)  # what the Trainer runs at a save step, push included
    assert json.loads((out / "checkpoint-3" / "hindi_ocr.json").read_text()) == {
        "line_layout": "squash", "lines_per_page": 2}


def test_a_failed_final_push_retries_the_upload_not_the_save(setup, tmp_path, local_hub, monkeypatch):
    """Under FSDP / ZeRO-3 saving the model is collective: a transient Hub error on the final push must be retried by
    uploading again, not by saving again on process 0 alone (the others would not join: a hang)."""
    from hindi_ocr import hub
    from hindi_ocr.arguments import parse_args
    from hindi_ocr.training import build_model_and_processor, build_trainer, load_datasets

    model, data, _ = setup
    out, repo = tmp_path / "out", "test-user/tiny-retry-upload"
    model_args, data_args, lora_args, training_args = parse_args(
        flags(model, data, out, "--push_to_hub", "--hub_model_id", repo))
    trainer_model, processor = build_model_and_processor(model_args, lora_args, training_args, max_new_tokens=8)
    trainer = build_trainer(trainer_model, processor, load_datasets(data_args), data_args, training_args)
    saves, save_model = [], trainer.save_model
    monkeypatch.setattr(trainer, "save_model", lambda *a, **k: saves.append(1) or save_model(*a, **k))
    monkeypatch.setattr(hub, "RETRY_WAITS", (0, 0))
    failure = local_hub.fail_next(rf"/{repo}/commit/", status=503, times=1)
    hub.push_run(trainer)
    assert failure.hits == 1 and len(saves) == 1  # one save, two uploads
    assert local_hub.repo_files(repo)[ADAPTER] == (out / ADAPTER).read_bytes()
    assert json.loads(local_hub.repo_files(repo)["hindi_ocr.json"]) == {"line_layout": "squash", "lines_per_page": 1}


def test_hub_resume_reads_one_commit_while_the_next_checkpoint_lands(setup, tmp_path, local_hub):
    """--resume_from_checkpoint hub reads trainer_state.json, then the checkpoint's files: a push landing between the
    two reads (session 1 still running) must not give a checkpoint-2 holding step 4's files."""
    import threading

    from huggingface_hub import HfApi
    from hindi_ocr.hub_resume import fetch_last_checkpoint

    _, _, reference = setup
    api, repo = HfApi(endpoint=local_hub.endpoint, token=local_hub.token), "test-user/racing-checkpoints"
    api.create_repo(repo)
    api.upload_folder(repo_id=repo, folder_path=reference / "checkpoint-2", path_in_repo="last-checkpoint")
    state_read = local_hub.fail_next(r"last-checkpoint/trainer_state\.json", status=None, times=None)
    local_hub.fail_next(rf"/api/models/{repo}/revision/", status=None, delay=6, times=None)  # the file listing

    def next_checkpoint():  # session 1 pushes step 4 right after the state file was read
        while not state_read.hits:
            time.sleep(0.05)
        api.upload_folder(repo_id=repo, folder_path=reference / "checkpoint-4", path_in_repo="last-checkpoint")

    pusher = threading.Thread(target=next_checkpoint)
    pusher.start()
    try:
        fetched = Path(fetch_last_checkpoint(repo, str(tmp_path / "out")))
    finally:
        pusher.join(timeout=60)
        local_hub.clear_failures()
    assert fetched.name == "checkpoint-2"
    assert json.loads((fetched / "trainer_state.json").read_text())["global_step"] == 2
    assert (fetched / ADAPTER).read_bytes() == (reference / "checkpoint-2" / ADAPTER).read_bytes()
    assert local_hub.repo_files(repo)["last-checkpoint/trainer_state.json"] == (
        reference / "checkpoint-4" / "trainer_state.json").read_bytes()  # the push did land


def test_hub_resume_refuses_a_step_that_is_not_a_number(tmp_path, local_hub):
    from huggingface_hub import HfApi
    from hindi_ocr.hub_resume import fetch_last_checkpoint

    api, repo = HfApi(endpoint=local_hub.endpoint, token=local_hub.token), "test-user/odd-state"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b'{"global_step": "2/../../x"}', path_in_repo="last-checkpoint/trainer_state.json",
                    repo_id=repo)
    with pytest.raises(SystemExit, match=re.escape(
            f"--resume_from_checkpoint hub: last-checkpoint/trainer_state.json in {repo} has global_step '2/../../x', "
            "not a step number; it was not written by the Trainer")):
        fetch_last_checkpoint(repo, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_full_finetune_resumes_from_its_checkpoint_weights(setup, tmp_path):
    """Without LoRA the checkpoint holds the whole model under GOT-OCR2's saved key names: a resumed run must go on
    from those weights (not from the base), and end where the uninterrupted run ended."""
    model, data, _ = setup
    reference, resumed = tmp_path / "full", tmp_path / "full_resumed"
    train.main(flags(model, data, reference, "--no_use_lora", "--learning_rate", "1e-3"))
    (resumed / "checkpoint-2").parent.mkdir()
    shutil.copytree(reference / "checkpoint-2", resumed / "checkpoint-2")
    train.main(flags(model, data, resumed, "--no_use_lora", "--learning_rate", "1e-3", "--resume_from_checkpoint",
                     "true"))
    got, want = load_file(resumed / "model.safetensors"), load_file(reference / "model.safetensors")
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)
    halfway = load_file(reference / "checkpoint-2" / "model.safetensors")  # the tolerance tells runs apart
    assert any(not torch.allclose(halfway[name], want[name], rtol=1e-4, atol=1e-6) for name in want)
