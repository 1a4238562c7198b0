"""bf16 on a GPU without bf16 (Kaggle's and Colab's T4 and P100) is refused with our one-line error naming the flag to
use; whether a card has bf16 is torch's answer (is_bf16_supported(including_emulation=False)), and the message a
pure function of the card's facts, so it is tested here without a GPU and without mocks."""

import pytest

import train
from hindi_ocr.precision import GpuFacts, bf16_problem, check_bf16, fp16_problem, local_gpu
from hindi_ocr.arguments import parse_args

T4 = GpuFacts("Tesla T4", (7, 5), bf16=False)
P100 = GpuFacts("Tesla P100-PCIE-16GB", (6, 0), bf16=False)


def test_t4_and_p100_are_told_to_use_fp16():
    assert bf16_problem("--bf16 true", T4) == (
        "--bf16 true: the Tesla T4 (compute capability 7.5) has no bfloat16 arithmetic, which needs 8.0 or newer "
        "(A100, L4, H100...); use --fp16 true instead (fp32 weights, fp16 autocast with loss scaling), or leave --bf16 "
        "out for fp32. See the README, Kaggle / Colab (T4, P100)")
    assert bf16_problem("--dtype bfloat16", P100) == (
        "--dtype bfloat16: the Tesla P100-PCIE-16GB (compute capability 6.0) has no bfloat16 arithmetic, which needs "
        "8.0 or newer (A100, L4, H100...); leave --dtype at float32 and add --fp16 true (fp16 autocast with loss "
        "scaling) to save memory. See the README, Kaggle / Colab (T4, P100)")
    assert "\n" not in bf16_problem("--bf16 true", T4)


@pytest.mark.parametrize("gpu", [GpuFacts("NVIDIA A100-SXM4-40GB", (8, 0), True), GpuFacts("NVIDIA L4", (8, 9), True),
                                 GpuFacts("NVIDIA H100 80GB HBM3", (9, 0), True), None])
def test_cards_with_bf16_and_cpu_pass(gpu):
    assert bf16_problem("--bf16 true", gpu) is None


def test_this_machine_and_the_flags_go_through_the_same_check():
    gpu = local_gpu()
    if gpu is not None:
        pytest.skip("a CUDA GPU is present: the CPU path is not what runs here")
    check_bf16("--bf16 true")  # no GPU: nothing to refuse
    # --bf16 reaches the check while the flags are parsed; on CPU it passes and the run trains in bf16 autocast
    *_, training_args = parse_args(["--bf16", "true", "--use_cpu", "true", "--report_to", "none"])
    assert training_args.bf16 and training_args.use_cpu


def test_fp16_autocast_needs_fp32_weights_where_weights_train_in_full(tmp_path):
    assert fp16_problem(True, "float32", trains_full_weights=True) is None
    assert fp16_problem(True, "float16", trains_full_weights=False) is None  # LoRA adapters are kept in fp32
    with pytest.raises(SystemExit) as caught:  # refused by train.py before any data or model is read
        train.main(["--model_name_or_path", str(tmp_path / "no-model"), "--output_dir", str(tmp_path / "out"),
                    "--fp16", "true", "--dtype", "float16", "--no_use_lora", "--use_cpu", "true"])
    assert str(caught.value) == (
        "--fp16 true with --dtype float16: the weights trained in full (--no_use_lora or --train_projector) would be "
        "fp16, and the fp16 loss scaler cannot unscale fp16 gradients; leave --dtype at float32 (the forward pass "
        "still runs in fp16 under autocast)")
    assert not (tmp_path / "out").exists()
