"""The DeepSpeed configs (configs/deepspeed_zero{2,3}.json) resolve against our arguments the way the Trainer resolves
them: every "auto" filled from the flags or from the GOT-OCR2 model, nothing left to contradict a flag.

Skipped without deepspeed (``pip install -e ".[deepspeed]"``). No engine is started: that needs a GPU (or oneCCL)
and a process group; what can go wrong on our side is the config meeting our arguments and our model.
"""

import json
from pathlib import Path

import pytest

deepspeed = pytest.importorskip("deepspeed")

from accelerate.state import AcceleratorState, PartialState  # noqa: E402
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config  # noqa: E402

from hindi_ocr.tiny import build_tiny_model, load_tiny  # noqa: E402
from hindi_ocr.arguments import OcrTrainingArguments  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Loaded before any DeepSpeed arguments exist: with ZeRO-3 arguments alive, from_pretrained would partition
    the weights at load (deepspeed.zero.Init), which needs a process group."""
    return load_tiny(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))[0]


@pytest.fixture(autouse=True)
def forget_deepspeed():
    """The arguments register their DeepSpeed config globally and set up accelerate's shared state with it: undo
    both, or later tests in this process would load models and build Trainers under DeepSpeed."""
    yield
    unset_hf_deepspeed_config()
    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()


def arguments(tmp_path, stage, **flags):
    return OcrTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none",
                                deepspeed=str(CONFIGS / f"deepspeed_zero{stage}.json"), per_device_train_batch_size=2,
                                gradient_accumulation_steps=3, learning_rate=3e-4, max_grad_norm=0.7, **flags)


@pytest.mark.parametrize("stage", [2, 3])
def test_auto_values_are_filled_from_our_flags_and_model(tmp_path, model, stage):
    args = arguments(tmp_path, stage)
    resolved = args.hf_deepspeed_config
    config = resolved.config
    assert config["zero_optimization"]["stage"] == stage == args.deepspeed_plugin.zero_stage
    assert args.deepspeed_plugin.hf_ds_config is resolved  # what accelerate hands to deepspeed.initialize
    assert config["train_micro_batch_size_per_gpu"] == 2
    assert config["gradient_accumulation_steps"] == 3
    assert config["train_batch_size"] == 6  # 2 per device x 3 accumulation x 1 process
    assert config["gradient_clipping"] == 0.7
    assert config["bf16"]["enabled"] is False and config["fp16"]["enabled"] is False
    # No optimizer or scheduler section: the Trainer's AdamW at --learning_rate with --lr_scheduler_type runs under
    # DeepSpeed, so the file cannot hold a learning rate that contradicts the flag.
    assert "optimizer" not in config and "scheduler" not in config
    assert args.learning_rate == 3e-4
    assert is_deepspeed_zero3_enabled() is (stage == 3)

    resolved.trainer_config_finalize(args, model, num_training_steps=10)  # the Trainer's call, once it has the model
    hidden = model.config.text_config.hidden_size  # GOT-OCR2 has no top-level hidden_size: the language model's
    zero = config["zero_optimization"]
    assert zero["reduce_bucket_size"] == hidden * hidden
    if stage == 3:
        assert zero["stage3_prefetch_bucket_size"] == int(0.9 * hidden * hidden)
        assert zero["stage3_param_persistence_threshold"] == 10 * hidden
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert "auto" not in json.dumps(config)


def test_precision_follows_the_flag(tmp_path):
    config = arguments(tmp_path, 3, bf16=True, use_cpu=True).hf_deepspeed_config.config  # bf16 on a CPU: use_cpu
    assert config["bf16"]["enabled"] is True and config["fp16"]["enabled"] is False
