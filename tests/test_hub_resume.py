"""Resume across sessions through the Hub (a Kaggle or Colab session ends; the next starts with an empty disk):
session 1 trains with --push_to_hub --hub_strategy checkpoint, session 2 starts in a fresh output_dir with
--resume_from_checkpoint hub and ends with the adapter of a run that was never interrupted. Against the local Hub
server (tests/hub_server.py); the constant learning rate lets session 1 end at step 2 by --max_steps."""

import json

import pytest
import torch
from safetensors.torch import load_file

import train
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model

REPO_ID = "test-user/tiny-resume"
LINES = ["नमस्ते दुनिया", "भारत एक देश है", "किताब पढ़ो", "पानी गरम है"]
ADAPTER = "adapter_model.safetensors"
RECIPE = ["--save_steps", "2", "--learning_rate", "5e-3", "--lr_scheduler_type", "constant", "--lora_r", "4",
          "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--seed", "7",
          "--eval_strategy", "no", "--report_to", "none", "--logging_steps", "1", "--max_target_tokens", "16",
          "--dataset_options", "validation_ratio=0,test_ratio=0"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub_resume")
    model = build_tiny_model(root / "tiny")
    data = write_line_folder(root / "data", LINES, size=20)
    return model, data


def flags(model, data, out, steps, *extra):
    return ["--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(out),
            "--max_steps", str(steps), *RECIPE, *extra]


def test_second_session_resumes_from_the_hub_to_the_uninterrupted_adapter(setup, local_hub, tmp_path):
    model, data = setup
    reference = tmp_path / "reference"
    train.main(flags(model, data, reference, 4))

    push = ["--push_to_hub", "--hub_model_id", REPO_ID, "--hub_strategy", "checkpoint"]
    train.main(flags(model, data, tmp_path / "session1", 2, *push))
    on_hub = local_hub.repo_files(REPO_ID)
    pushed = {name.removeprefix("last-checkpoint/"): data for name, data in on_hub.items()
              if name.startswith("last-checkpoint/")}
    assert {ADAPTER, "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"} <= set(pushed)

    session2 = tmp_path / "session2"  # a new machine: nothing of session 1 on disk
    train.main(flags(model, data, session2, 4, *push[:3], "--resume_from_checkpoint", "hub"))
    fetched = session2 / "checkpoint-2"
    assert {name: (fetched / name).read_bytes() for name in pushed} == pushed
    assert sorted(p.name for p in session2.glob("*checkpoint*")) == ["checkpoint-2", "checkpoint-4"]

    got, want = load_file(session2 / ADAPTER), load_file(reference / ADAPTER)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)
    # Session 2 trained steps 3 and 4 only (a fresh 4-step run would end at the same adapter): its mean loss is that
    # of the reference's last two steps.
    losses = {e["step"]: e["loss"] for e in json.loads((reference / "trainer_state.json").read_text())["log_history"]
              if "loss" in e}
    train_loss = json.loads((session2 / "train_results.json").read_text())["train_loss"]
    assert train_loss == pytest.approx((losses[3] + losses[4]) / 2, rel=1e-5)
    assert train_loss != pytest.approx(sum(losses.values()) / 4, rel=1e-3)
    # The comparison can tell runs apart: session 1's adapter (two steps short) is far from the final one.
    with pytest.raises(AssertionError):
        torch.testing.assert_close(load_file(fetched / ADAPTER), want, rtol=1e-4, atol=1e-6)

    # The same command again in the same folder reuses the fetched checkpoint (what a second process does under DDP).
    train.main(flags(model, data, session2, 4, *push[:3], "--resume_from_checkpoint", "hub"))


def test_resume_from_hub_errors_name_the_flag(setup, local_hub, tmp_path):
    model, data = setup
    with pytest.raises(SystemExit) as caught:
        train.main(flags(model, data, tmp_path / "a", 4, "--resume_from_checkpoint", "hub"))
    assert str(caught.value) == (
        "--resume_from_checkpoint hub fetches last-checkpoint/ from the repo of --hub_model_id: add --hub_model_id "
        "USER/NAME, the repo a run with --push_to_hub --hub_strategy checkpoint pushed to")

    from huggingface_hub import HfApi

    HfApi().create_repo("test-user/no-checkpoints")
    with pytest.raises(SystemExit) as caught:
        train.main(flags(model, data, tmp_path / "b", 4, "--resume_from_checkpoint", "hub",
                         "--hub_model_id", "test-user/no-checkpoints"))
    assert str(caught.value).startswith(
        "--resume_from_checkpoint hub: could not read last-checkpoint/trainer_state.json from test-user/no-checkpoints "
        "(RemoteEntryNotFoundError")
    assert str(caught.value).endswith("--push_to_hub --hub_strategy checkpoint and have saved at least one checkpoint; "
                                      "a private repo needs a token (hf auth login, HF_TOKEN or --hub_token)")
    assert not (tmp_path / "b").exists()  # nothing written before the model would load
