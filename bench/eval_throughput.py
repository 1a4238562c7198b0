#!/usr/bin/env python
"""Reading throughput (lines/s): batch 1 vs batched generation, LoRA adapter vs merged, and the Trainer's evaluation.

    python bench/eval_throughput.py                       # image sizes 1024 and 256, 16 lines, 32 new tokens each
    python bench/eval_throughput.py --sizes 256 --lines 32 --batch_sizes 8 32

* ``read_lines`` (what infer.py runs): greedy generation with the KV cache; every prompt has the same length, so a
  batch needs no padding; the images are encoded once per batch, before the prefill. Each line generates exactly
  ``--new_tokens`` tokens (min_new_tokens = max_new_tokens) so that every mode does the same work: a random model
  would otherwise stop whenever it happens to emit ``<|im_end|>``.
* ``adapter``: the model wrapped by peft (LoRA r8 on the language model); ``merged``: ``merge_and_unload()``.
* ``Trainer.evaluate``: the evaluation train.py runs at every eval step (loss + generation per batch,
  per_device_eval_batch_size = the first of --batch_sizes). before: OcrTrainer.prediction_step as of commit
  5254ee1, run here as it was (each image encoded twice per batch: for the loss, and again inside generate);
  after: encoded once, and with the LoRA default also cached, so a second evaluation of the same validation lines
  encodes nothing.

The modes alternate within each round; the table gives the median over rounds.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def legacy_prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
    """OcrTrainer.prediction_step as of commit 5254ee1 (before the frozen-encoder change): the images go to the model
    as pixel_values twice, once for the eval loss and once more inside generate."""
    import torch

    from hindi_ocr.examples import prompt_length

    inputs = self._prepare_inputs(inputs)
    gen_kwargs = gen_kwargs or {k: v for k, v in getattr(self, "_gen_kwargs", {}).items() if v is not None}
    gen_kwargs.pop("max_length", None)
    with torch.no_grad():
        with self.compute_loss_context_manager():
            loss = model(**inputs).loss.detach()
        start = prompt_length(inputs["labels"])
        generated = model.generate(
            input_ids=inputs["input_ids"][:, :start],
            attention_mask=inputs["attention_mask"][:, :start],
            pixel_values=inputs["pixel_values"],
            **gen_kwargs,
        )[:, start:]
    return loss, generated, inputs["labels"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 256])
    p.add_argument("--lines", type=int, default=16)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 16],
                   help="batched read_lines sizes; the first is also the Trainer's eval batch")
    p.add_argument("--new_tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no_trainer", action="store_true", help="skip the Trainer.evaluate rows")
    args = p.parse_args(argv)

    import torch
    import transformers

    from hindi_ocr.examples import OcrExampleBuilder
    from hindi_ocr.inference import lines_from_data_dir, read_lines
    from hindi_ocr.modeling import attach_lora, configure_generation, load_base_model, load_processor
    from hindi_ocr.arguments import DataArguments, OcrTrainingArguments
    from hindi_ocr.checks import check_got_ocr2
    from hindi_ocr.training import build_trainer, load_datasets

    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    data = c.line_folder(args.lines, seed=2)
    lines = lines_from_data_dir(str(data))
    results = []
    for size in args.sizes:
        path = str(c.tiny_model(size))
        config = check_got_ocr2(path)
        processor = load_processor(path, config)
        torch.manual_seed(0)
        adapter = attach_lora(load_base_model(path, config, processor, dtype="float32"), r=8, alpha=32, dropout=0.05)
        merged = copy.deepcopy(adapter).merge_and_unload()
        for model in (adapter, merged):
            configure_generation(model, processor, max_new_tokens=args.new_tokens)
            model.generation_config.min_new_tokens = args.new_tokens
            model.eval()
        builder = OcrExampleBuilder(processor)
        modes = {}
        for name, model in (("adapter", adapter), ("merged", merged)):
            for batch in (1, *args.batch_sizes):
                modes[("read_lines", name, batch)] = (lambda m, b: lambda: list(
                    read_lines(m, builder, lines, b, repetition_stop=False)))(model, batch)  # fixed token count
        if not args.no_trainer:
            data_args = DataArguments(data_dir=str(data), dataset_options="validation_ratio=0,test_ratio=0",
                                      num_sample_predictions=0)
            split = load_datasets(data_args)["train"]
            training_args = OcrTrainingArguments(output_dir=str(c.BENCH_DIR / "runs" / "eval"), report_to="none",
                                                 per_device_eval_batch_size=args.batch_sizes[0])
            trainers = {}
            for name in ("before", "after"):
                trainer = build_trainer(adapter, processor, {"validation": split}, data_args, training_args)
                if name == "before":
                    trainer.image_feature_cache = None
                    trainer.data_collator.feature_cache = None
                    trainer.prediction_step = types.MethodType(legacy_prediction_step, trainer)
                trainers[name] = trainer

            def evaluate(name, fresh):
                trainer = trainers[name]
                if fresh and trainer.image_feature_cache is not None:  # a first evaluation: nothing cached yet
                    trainer.image_feature_cache.__init__(trainer.image_feature_cache.max_bytes)
                return trainer.evaluate()

            batch = args.batch_sizes[0]
            modes[("Trainer.evaluate", "before", batch)] = lambda: evaluate("before", True)
            modes[("Trainer.evaluate", "after, 1st eval", batch)] = lambda: evaluate("after", True)
            modes[("Trainer.evaluate", "after, later evals", batch)] = lambda: evaluate("after", False)
        timings = {key: [] for key in modes}
        for round_ in range(args.rounds):
            for key, fn in modes.items():
                start = time.perf_counter()
                fn()
                timings[key].append(time.perf_counter() - start)
                print(f"[bench] size {size} round {round_} {key}: {timings[key][-1]:.1f} s", file=sys.stderr,
                      flush=True)
        for key, values in timings.items():
            results.append((size, *key, len(lines) / c.median(values)))

    rows = []
    for size, what, variant, batch, lps in results:
        base = next(r[4] for r in results if r[0] == size and r[1] == "read_lines" and r[2] == "adapter"
                    and r[3] == 1)
        rows.append([size, what, variant, batch, f"{lps:.2f}", f"{lps / base:.1f}x"])
    print(f"# reading throughput (lines/s), tiny GOT-OCR2 + LoRA r8, {len(lines)} lines, {args.new_tokens} new "
          f"tokens per line, median of {args.rounds} rounds")
    print(f"# {c.machine()}; torch threads: {args.threads}")
    print(c.table(["image", "path", "model", "batch", "lines/s", "vs batch 1 adapter"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
