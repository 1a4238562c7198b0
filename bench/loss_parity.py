#!/usr/bin/env python
"""Same seed, same data: the training loss at every step before and after the frozen-encoder path (feature cache).

    python bench/loss_parity.py

Runs the real Trainer path (bench/_train_child.py) with LoRA r8 on the tiny model over 16 lines for several epochs
(so later epochs read every image's features from the cache), once with the frozen-encoder path off ("before") and
once on ("after"), and prints both loss curves and their largest difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from train_throughput import run  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    data = c.line_folder(16, seed=1)
    cases = [
        ("256, batch 4, 6 epochs", {"model": str(c.tiny_model(256)), "batch_size": 4, "steps": 24}),
        ("256, batch 4, grad ckpt, 6 epochs", {"model": str(c.tiny_model(256)), "batch_size": 4, "steps": 24,
                                               "gradient_checkpointing": True}),
        ("1024, batch 4, 2 epochs", {"model": str(c.tiny_model(1024)), "batch_size": 4, "steps": 8}),
    ]
    rows, curves = [], []
    for name, spec in cases:
        spec = {**spec, "data_dir": str(data), "learning_rate": 1e-3, "seed": 0, "threads": args.threads}
        before = run({**spec, "baseline": True}, args.threads)
        after = run(spec, args.threads)
        diff = max(abs(a - b) for a, b in zip(before["loss"], after["loss"]))
        rows.append([name, len(before["loss"]), f"{before['loss'][0]:.4f} -> {before['loss'][-1]:.4f}",
                     f"{after['loss'][0]:.4f} -> {after['loss'][-1]:.4f}", f"{diff:.1e}",
                     f"{after['cache']['hits']}/{after['cache']['hits'] + after['cache']['misses']}"])
        curves.append((name, before["loss"], after["loss"]))
    print("# training loss at every step, seed 0, LoRA r8, lr 1e-3, 16 lines: frozen-encoder path off vs on")
    print(f"# {c.machine()}; torch threads per run: {args.threads}")
    print(c.table(["run", "steps", "loss before (first -> last)", "loss after", "max abs diff", "cache hits"], rows))
    for name, before, after in curves:
        print(f"\n{name}\nbefore: {json.dumps([round(x, 5) for x in before])}\nafter:  "
              f"{json.dumps([round(x, 5) for x in after])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
