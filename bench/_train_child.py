"""One training run through the real Trainer path (hindi_ocr.training: load_datasets, build_model_and_processor,
build_trainer), timed per optimizer step; run in a child process by the benchmark scripts.

    python bench/_train_child.py '{"model": DIR, "data_dir": DIR, "batch_size": 4, ...}'

Prints one ``BENCH_RESULT {json}`` line: per-step wall times (data loading included), the loss at every step,
peak RSS of this process, and the image feature cache's counters. ``"baseline": true`` turns off the frozen-encoder
path (feature cache and autograd-free encoding) so the library behaves as before that change.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (sets the offline environment first)


def main(spec: dict) -> dict:
    import torch
    import transformers
    from transformers import TrainerCallback

    from hindi_ocr.arguments import DataArguments, LoraArguments, ModelArguments, OcrTrainingArguments
    from hindi_ocr.training import build_model_and_processor, build_trainer, load_datasets

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    transformers.utils.logging.set_verbosity_error()
    out = Path(spec.get("output_dir") or _common.BENCH_DIR / "runs" / "train-child")
    model_args = ModelArguments(model_name_or_path=spec["model"])
    data_args = DataArguments(data_dir=spec["data_dir"], dataset_options="validation_ratio=0,test_ratio=0",
                              max_target_tokens=spec.get("max_target_tokens", 256))
    lora_args = LoraArguments(use_lora=spec.get("use_lora", True))
    training_args = OcrTrainingArguments(
        output_dir=str(out), overwrite_output_dir=True,
        per_device_train_batch_size=spec["batch_size"],
        gradient_accumulation_steps=spec.get("grad_accum", 1),
        max_steps=spec["steps"], learning_rate=spec.get("learning_rate", 2e-5),
        lr_scheduler_type=spec.get("lr_scheduler_type", "linear"), warmup_steps=spec.get("warmup_steps", 0),
        gradient_checkpointing=spec.get("gradient_checkpointing", False),
        dataloader_num_workers=spec.get("workers", 0),
        eval_strategy="no", save_strategy="no", report_to="none", logging_steps=1,
        seed=spec.get("seed", 42), data_seed=spec.get("seed", 42), disable_tqdm=True,
        image_feature_cache_mb=spec.get("cache_mb", 2048),
    )
    transformers.set_seed(training_args.seed)
    datasets = load_datasets(data_args)
    model, processor = build_model_and_processor(model_args, lora_args, training_args, max_new_tokens=64)
    trainer = build_trainer(model, processor, datasets, data_args, training_args)
    if spec.get("baseline"):
        trainer.image_feature_cache = None
        trainer.data_collator.feature_cache = None

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.losses, self._last = [], [], None

        def on_train_begin(self, args, state, control, **kwargs):
            self._last = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            self.times.append(now - self._last)
            self._last = now

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    timer = StepTimer()
    trainer.add_callback(timer)
    start = time.perf_counter()
    trainer.train()
    cache = trainer.image_feature_cache
    return {
        "step_s": timer.times,
        "loss": timer.losses,
        "train_s": time.perf_counter() - start,
        "samples_per_step": spec["batch_size"] * spec.get("grad_accum", 1),
        "peak_rss": _common.self_peak_rss(),
        "cache": None if cache is None else {"entries": len(cache), "mib": cache.nbytes / 2**20,
                                             "hits": cache.hits, "misses": cache.misses},
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    _common.emit(main(json.loads(sys.argv[1])))
