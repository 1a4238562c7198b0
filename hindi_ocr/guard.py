"""Stop a run whose loss or gradients went non-finite, before it saves or pushes a broken checkpoint.

A NaN or inf loss never heals: the optimizer writes it into the weights, and the run goes on for hours logging
``loss 0.0`` (the Trainer's ``logging_nan_inf_filter`` replaces non-finite losses by the running mean, which is 0
right after a log) and ``grad_norm nan``. :class:`NonFiniteGuard` reads the values the Trainer already brings to
the host to log them, so it adds no device sync per step; it makes every checkpoint save follow a log, so no save
escapes the check; and before a save (with ``--save_strategy best``, before each evaluation) it checks the trainable
weights once (a host copy of them follows anyway), each process its own shard under ZeRO-3 / FSDP.
"""

from __future__ import annotations

import logging
import math

import torch
from transformers import TrainerCallback

from .checkpoints import newest_complete

logger = logging.getLogger(__name__)

# With --fp16 the loss scaler skips every update whose gradients hold an inf or NaN (the weights do not change) and
# halves its scale: it starts at 2**16, so the first steps often log an inf gradient norm, and a one-off NaN loss
# (an fp16 overflow in the forward pass) costs one update. Only this many such logs in a row stop the run.
FP16_OVERFLOW_LOGS = 3
WATCHED = (("loss", "training loss"), ("eval_loss", "validation loss"), ("grad_norm", "gradient norm"))


class NonFiniteTraining(SystemExit):
    """Raised by train.py after the Trainer has stopped cleanly: exit code 1 with the guard's message."""


class NonFiniteGuard(TrainerCallback):
    def __init__(self, output_dir: str, learning_rate: float, sixteen_bit_flags: list[str] = (),
                 loss_scaling: bool = False):
        self.output_dir, self.learning_rate = output_dir, learning_rate
        self.sixteen_bit_flags = list(sixteen_bit_flags)  # what to drop for fp32, e.g. ["--fp16"]
        self.loss_scaling = loss_scaling  # --fp16: a non-finite gradient norm alone is a skipped update
        self.overflow_logs = 0
        self.bad_weight: str | None = None
        self.message: str | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.message:
            return self._halt(control)
        if control.should_save or control.should_evaluate:
            control.should_log = True  # the log runs before the save in the same step: the check comes first
        # --save_strategy best decides to save only after an evaluation: the weights are checked before each one
        saving = control.should_save or (control.should_evaluate and args.save_strategy == "best")
        if saving and model is not None:
            self.bad_weight = nonfinite_weights(model)  # judged in on_log, where this step's loss is known
        return control

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if not self.message and control.should_save and model is not None:
            bad = nonfinite_weights(model)
            if bad:
                self._trip(state.global_step, f"the trainable weight {bad} is not finite", control)
        return self._halt(control) if self.message else control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.message:
            return self._halt(control)
        found = [(key, label, logs[key]) for key, label in WATCHED
                 if isinstance((logs or {}).get(key), (int, float)) and not math.isfinite(logs[key])]
        losses = [item for item in found if item[0] != "grad_norm"]
        bad_weight, self.bad_weight = self.bad_weight, None
        if not found and not bad_weight:
            self.overflow_logs = 0
            return control
        skippable = self.loss_scaling and not bad_weight and all(key in ("loss", "grad_norm") for key, *_ in found)
        if skippable:  # the scaler skipped those updates: the weights are as before
            self.overflow_logs += 1
            if self.overflow_logs < FP16_OVERFLOW_LOGS:
                logger.warning("step %d: %s; with --fp16 the loss scaler skips such an update (the weights do not "
                               "change) and lowers its scale", state.global_step,
                               ", ".join(f"{label} {value}" for _, label, value in found))
                return control
        if found:
            key, label, value = (losses or found)[0]
            what = f"the {label} is {value}"
            if key == "loss" and "grad_norm" in logs:
                what += f" (gradient norm {logs['grad_norm']})"
            if skippable:
                what += (f" in {FP16_OVERFLOW_LOGS} logs in a row (the fp16 loss scaler skipped those updates, but "
                         "they did not stop)")
        else:
            what = f"the trainable weight {bad_weight} is not finite after the update (loss {logs.get('loss')})"
        self._trip(state.global_step, what, control)
        return control

    def _trip(self, step: int, what: str, control) -> None:
        self.message = self.explain(step, what)
        logger.error("%s", self.message)
        self._halt(control)

    @staticmethod
    def _halt(control):
        control.should_training_stop = True
        control.should_save = control.should_evaluate = control.should_log = False
        return control

    def explain(self, step: int, what: str) -> str:
        """What stopped, where the last good state is, and what to try: lower lr, fp32, the last checkpoint."""
        last = newest_complete(self.output_dir, warn=False)
        kept = (f"The last checkpoint, {last} (saved with a finite loss and weights), is untouched; nothing from "
                f"step {step} on was saved or pushed."
                if last else f"No checkpoint had been saved yet; nothing from step {step} on was saved or pushed.")
        fp32 = (f"drop {' and '.join(self.sixteen_bit_flags)} to train in fp32 (slower, but it does not overflow "
                "where 16-bit does)" if self.sixteen_bit_flags
                else "fp32 is already in use here, so check the data and the base model too")
        resume = (f"; or --resume_from_checkpoint {last} to go on from there (a resumed run keeps that run's "
                  "learning rate and optimizer state)" if last else "")
        return (f"Training stopped at step {step}: {what}. {kept} Try: a lower --learning_rate than "
                f"{self.learning_rate:g} in a fresh run (a new --output_dir, or --overwrite_output_dir); {fp32}"
                f"{resume}.")


def nonfinite_weights(model) -> str | None:
    """Name of the first trainable parameter holding a NaN or inf, or None (one device sync in all).

    Under a launcher every process must reach the same verdict, or one would skip a save the others run (FSDP and
    ZeRO-3 gather weights to save, and each process only holds its shard): the flags are reduced across processes.
    """
    import torch.distributed as dist

    named = [(name, local_shard(p)) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        return None
    device = named[0][1].device
    with torch.no_grad():
        finite = torch.stack([torch.isfinite(p).all().to(device) for _, p in named]).to(torch.int32)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        finite = finite.cpu().bool()
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0])][0]


def local_shard(param: torch.Tensor) -> torch.Tensor:
    """The values of ``param`` this process holds. Under DeepSpeed ZeRO-3 a parameter outside a forward pass is an
    empty placeholder and the process's partition is ``ds_tensor``; under FSDP2 it is a DTensor whose local part is
    ``to_local()``. Each process checks its part; :func:`nonfinite_weights` reduces the verdicts, so all of a weight
    is seen. (ZeRO-3 has not been run here: no GPU. A placeholder without ``ds_tensor`` would pass unseen.)"""
    if getattr(param, "ds_tensor", None) is not None:
        return param.ds_tensor
    return param.to_local() if hasattr(param, "to_local") else param


def sixteen_bit_flags(training_args, dtype: str) -> list[str]:
    """The flags that put the run in 16-bit, as the user would drop them."""
    flags = [flag for flag, on in (("--fp16", training_args.fp16), ("--bf16", training_args.bf16)) if on]
    return flags + ([f"--dtype {dtype}"] if dtype in ("bfloat16", "float16") else [])
