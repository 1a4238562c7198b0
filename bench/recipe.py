#!/usr/bin/env python
"""The recipe questions, answered on the shipped reader: which LoRA recipe adapts it best to a new domain for the
same compute? Each variant fine-tunes the reader (``python -m hindi_ocr.reader``) on the quick start's domain
(``configs/smoke.yaml``'s data) for the same CPU time, then reads the same validation lines.

    python bench/recipe.py --cpu_minutes 3 --out /tmp/recipe
    python bench/recipe.py --cpu_minutes 3 --variants lines squash --out /tmp/recipe

CPU time (this process's, one thread) rather than wall-clock, so that variants run on a shared machine get the same
compute; on a quiet machine with one thread the two agree. Prints a table (variant, steps, lines trained on,
validation CER before and after) and writes ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import REPO, machine  # noqa: E402  (also sets the offline environment)

VARIANTS = {
    "lines": [],  # the quick start: single lines, fold, LoRA on the language model + the projector in full
    "squash": ["--line_layout", "squash"],
    "pages4": ["--lines_per_page", "4", "--line_layout", "squash"],  # pages take no line layout: the default
    "pages8": ["--lines_per_page", "8", "--line_layout", "squash"],
    "lm-only": ["--train_projector", "false"],  # LoRA on the language model alone
    "lm+vision": ["--lora_vision", "true"],  # LoRA on the language model and the vision tower, + the projector
}


class CpuBudget:
    """Trainer callback: stop once this process has used ``seconds`` of CPU time."""

    def __init__(self, seconds: float):
        from transformers import TrainerCallback

        budget = self
        self.seconds, self.start, self.steps = seconds, None, 0

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                budget.start = time.process_time()

            def on_step_end(self, args, state, control, **kwargs):
                budget.steps = state.global_step
                if time.process_time() - budget.start >= budget.seconds:
                    control.should_training_stop = True

        self.callback = Callback()


def run(name: str, reader: Path, out: Path, cpu_minutes: float) -> dict:
    from hindi_ocr.arguments import parse_args
    from hindi_ocr.page_training import max_new_tokens
    from hindi_ocr.training import build_model_and_processor, build_trainer, load_datasets

    argv = [str(REPO / "configs" / "smoke.yaml"), "--model_name_or_path", str(reader), "--output_dir",
            str(out / name), "--overwrite_output_dir", "--max_steps", "100000", "--eval_strategy", "no",
            "--eval_on_start", "false", "--save_strategy", "no", "--load_best_model_at_end", "false",
            "--report_to", "none", *VARIANTS[name]]
    model_args, data_args, lora_args, training_args = parse_args(argv)
    datasets = load_datasets(data_args)
    model, processor = build_model_and_processor(model_args, lora_args, training_args,
                                                 max_new_tokens=max_new_tokens(data_args))
    trainer = build_trainer(model, processor, datasets, data_args, training_args)
    before = trainer.evaluate()["eval_cer"]
    budget = CpuBudget(cpu_minutes * 60)
    trainer.add_callback(budget.callback)
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    after = trainer.evaluate()["eval_cer"]
    per_step = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    lines = budget.steps * per_step * data_args.lines_per_page
    return {"variant": name, "steps": budget.steps, "lines": lines, "wall_s": round(wall, 1),
            "cer_before": round(before, 4), "cer_after": round(after, 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/hindi-ocr-bench/recipe")
    p.add_argument("--cpu_minutes", type=float, default=3.0, help="CPU time of each variant's training")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--reader", help="the reader's folder (default: written from the package)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reader = Path(args.reader) if args.reader else None
    if reader is None:
        from hindi_ocr.reader import reader_path

        reader = reader_path()
    rows = []
    for name in args.variants:
        rows.append(run(name, reader, out, args.cpu_minutes))
        print(json.dumps(rows[-1]), flush=True)
        (out / "results.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    print(f"\n{args.cpu_minutes:g} CPU minutes of LoRA fine-tuning each, on configs/smoke.yaml's domain\n")
    print("| variant | steps | lines trained on | wall s | validation CER before | after |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['steps']} | {r['lines']} | {r['wall_s']} | {r['cer_before']} | "
              f"{r['cer_after']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
