"""Which 16-bit format a GPU can train in: torch says whether the card has bfloat16 arithmetic, the message is a
pure function of plain facts about the card so it can be tested anywhere.

bfloat16 arithmetic arrived with compute capability 8.0 (Ampere: A100, A10, L4, RTX 30xx; H100 after). The cards of
Kaggle and Colab's free tier, T4 (7.5) and P100 (6.0), have none: ``torch.cuda.is_bf16_supported()`` still answers
True there because it can emulate bf16 (so transformers accepts ``--bf16`` and the run is as slow as fp32 or
slower, with bf16's short mantissa); ``including_emulation=False`` asks for the arithmetic itself. What they do have is fast fp16 (T4's tensor
cores; P100 runs fp16 at twice its fp32 rate), hence ``--fp16``: fp32 weights, fp16 autocast, loss scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

BF16_CAPABILITY = (8, 0)  # for the message; whether a card has bf16 is torch's answer


@dataclass(frozen=True)
class GpuFacts:
    name: str
    capability: tuple[int, int]  # (major, minor), as torch.cuda.get_device_capability gives it
    bf16: bool  # bfloat16 arithmetic: torch.cuda.is_bf16_supported(including_emulation=False)


def bf16_problem(flag: str, gpu: GpuFacts | None) -> str | None:
    """The error for asking ``flag`` (``--bf16 true``, ``--dtype bfloat16``) of ``gpu``, or None when it is fine.

    None for no CUDA GPU (CPU runs: bf16 autocast works there; ROCm: every card has bf16).
    """
    if gpu is None or gpu.bf16:
        return None
    instead = ("use --fp16 true instead (fp32 weights, fp16 autocast with loss scaling), or leave --bf16 out for "
               "fp32" if flag.startswith("--bf16") else
               "leave --dtype at float32 and add --fp16 true (fp16 autocast with loss scaling) to save memory")
    major, minor = gpu.capability
    return (f"{flag}: the {gpu.name} (compute capability {major}.{minor}) has no bfloat16 arithmetic, which needs "
            f"{BF16_CAPABILITY[0]}.{BF16_CAPABILITY[1]} or newer (A100, L4, H100...); {instead}. See the README, "
            "Kaggle / Colab (T4, P100)")


def fp16_problem(fp16: bool, dtype: str, trains_full_weights: bool) -> str | None:
    """``--fp16`` scales the loss and unscales fp32 gradients; weights loaded in fp16 that train in full (no LoRA,
    or the projector with --train_projector) have fp16 gradients, which torch's GradScaler refuses to unscale."""
    if not (fp16 and dtype == "float16" and trains_full_weights):
        return None
    return ("--fp16 true with --dtype float16: the weights trained in full (--no_use_lora or --train_projector) would "
            "be fp16, and the fp16 loss scaler cannot unscale fp16 gradients; leave --dtype at float32 (the forward "
            "pass still runs in fp16 under autocast)")


def local_gpu() -> GpuFacts | None:
    """Facts about the CUDA card this process would train on; None without one (or on ROCm)."""
    import torch

    if not torch.cuda.is_available() or torch.version.hip:
        return None
    index = torch.cuda.current_device()
    return GpuFacts(torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index)),
                    torch.cuda.is_bf16_supported(including_emulation=False))


def check_bf16(flag: str, use_cpu: bool = False) -> None:
    """Refuse a bf16 flag on a GPU without bf16, with the flag to use instead."""
    problem = None if use_cpu else bf16_problem(flag, local_gpu())
    if problem:
        raise SystemExit(problem)
