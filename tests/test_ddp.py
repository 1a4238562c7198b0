"""Data-parallel training on CPU: `torchrun --nproc_per_node 2 train.py` (gloo) must really run in parallel and
count every test line exactly once in CER/WER.

Five test lines over two processes: the distributed sampler repeats lines to fill the last batch, and only the
Trainer's ``gather_for_metrics`` drops those repeats. The 2-process run's test_results.json must therefore equal
infer.py reading the same five lines with the model that run saved, in one process. A run whose processes each
train and score alone, or whose gather keeps the repeats, reports a different CER. The tiny model is trained just
far enough to answer every image with the same memorised line; that makes the per-line error differ from line to
line, so a line counted twice moves the CER (checked below, so the comparison cannot pass by accident).

Also: the DeepSpeed / FSDP configs for GPU runs parse and name what they must.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

import infer
import train
from hindi_ocr.render import write_line_folder
from hindi_ocr.scoring import score
from hindi_ocr.tiny import build_tiny_model

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"

LINES = ["नमस्ते दुनिया", "भारत एक देश है", "हिंदी भाषा", "किताब पढ़ो", "पानी गरम है"]  # odd: the sampler pads

# Full fine-tuning, 30 updates at a high rate: the tiny model comes to answer one memorised line for every image.
FLAGS = [
    "--dataset_options", "validation_ratio=0", "--no_use_lora", "--max_steps", "30",
    "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--weight_decay", "0",
    "--per_device_train_batch_size", "3", "--gradient_accumulation_steps", "1", "--per_device_eval_batch_size", "2",
    "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--logging_steps", "10",
    "--max_target_tokens", "16", "--seed", "0",
]  # no --ddp_backend: on a machine without an accelerator gloo is chosen automatically (README, Scaling)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("ddp")
    lines = write_line_folder(work / "lines", LINES, test_samples=True)
    model = build_tiny_model(work / "tiny")
    return work, Path(model), lines


def run_args(model, lines, out):
    return ["--model_name_or_path", str(model), "--data_dir", str(lines), "--output_dir", str(out), *FLAGS]


def infer_lines(capsys, model, data_dir):
    """infer.py in this process: (predictions, printed CER, printed WER)."""
    capsys.readouterr()
    infer.main(["--model_name_or_path", str(model), "--data_dir", str(data_dir), "--max_new_tokens", "17"])
    out = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(r"CER (\S+) WER (\S+) grapheme_CER (\S+) median_CER \S+ catastrophic \S+ length_ratio \S+ \(n=(\d+)\)", out[-1])
    assert match, out[-1]
    assert int(match.group(4)) == len(LINES)
    return [line.split("\t", 1)[1] for line in out[:-1]], float(match.group(1)), float(match.group(2))


def test_two_process_run_counts_each_test_line_once(setup, capsys):
    work, model, lines = setup
    out = work / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "train.py"), *run_args(model, lines, out)]
    proc = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    log = proc.stdout + proc.stderr
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in log

    results = json.loads((out / "test_results.json").read_text())
    # Only the main process writes the reading settings and the card; the model it saved loads and reads.
    assert json.loads((out / "hindi_ocr.json").read_text()) == {"line_layout": "squash", "lines_per_page": 1}
    assert (out / "model.safetensors").is_file()
    card = {r.metric_type: r.metric_value for r in ModelCard.load(out / "README.md").data.eval_results}
    assert card["cer"] == results["test_cer"] and card["wer"] == results["test_wer"]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 30
    # 2 processes x 3 lines per update: each epoch of 5 lines is one update (a lone process would take two).
    assert state["epoch"] == pytest.approx(30.0)

    predictions, cer, wer = infer_lines(capsys, out, lines / "TestSamples")
    assert len(set(predictions)) < len(LINES)  # the memorised-line phase the test relies on
    # The comparison can fail: a repeated first line (what the sampler pads with) moves the printed CER.
    padded = score(predictions + predictions[:1], LINES + LINES[:1])
    assert round(padded["cer"], 4) != round(score(predictions, LINES)["cer"], 4)

    assert round(results["test_cer"], 4) == cer
    assert round(results["test_wer"], 4) == wer


def test_one_process_run_reads_like_infer(setup, capsys):
    """The same run in one process: its Trainer test eval and infer.py on its model agree too (the baseline)."""
    work, model, lines = setup
    out = work / "single"
    train.main(run_args(model, lines, out))
    results = json.loads((out / "test_results.json").read_text())
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 30 and state["epoch"] == pytest.approx(15.0)  # 3 of 5 lines: 2 updates an epoch
    _, cer, wer = infer_lines(capsys, out, lines / "TestSamples")
    assert round(results["test_cer"], 4) == cer
    assert round(results["test_wer"], 4) == wer


def test_deepspeed_configs():
    for stage in (2, 3):
        config = json.loads((CONFIGS / f"deepspeed_zero{stage}.json").read_text())
        assert config["zero_optimization"]["stage"] == stage
        # "auto": the Trainer fills these from its flags, so the config never contradicts the command line
        for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
            assert config[key] == "auto", key
        assert config["bf16"]["enabled"] == "auto" and config["fp16"]["enabled"] == "auto"
    zero3 = json.loads((CONFIGS / "deepspeed_zero3.json").read_text())["zero_optimization"]
    assert zero3["stage3_gather_16bit_weights_on_model_save"] is True  # else save_model writes empty shards


def test_fsdp_config():
    import transformers.models.got_ocr2.modeling_got_ocr2 as got_ocr2
    import transformers.models.qwen2.modeling_qwen2 as qwen2
    from accelerate.commands.config.config_args import ClusterConfig

    raw = yaml.safe_load((CONFIGS / "fsdp.yaml").read_text())
    assert raw["distributed_type"] == "FSDP" and not raw["use_cpu"]
    config = ClusterConfig.from_yaml_file(str(CONFIGS / "fsdp.yaml"))  # accelerate's own reader
    fsdp = config.fsdp_config
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # a plain adapter/model in output_dir
    assert fsdp["fsdp_use_orig_params"] is True  # LoRA: frozen and trainable weights share the flat parameters
    for name in fsdp["fsdp_transformer_layer_cls_to_wrap"].split(","):
        assert hasattr(qwen2, name) or hasattr(got_ocr2, name), name
