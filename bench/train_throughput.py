#!/usr/bin/env python
"""Training throughput of the real Trainer path (build_trainer / OcrExampleBuilder), tiny GOT-OCR2, LoRA (default).

    python bench/train_throughput.py                      # sizes 1024 256, batches 1 4 8, checkpointing off/on
    python bench/train_throughput.py --sizes 256 --batches 4 --lines 16

Every configuration runs in its own child process (bench/_train_child.py) for two epochs over ``--lines`` rendered
lines, and, alternating with it, the same configuration with the frozen-encoder path turned off ("before": the
library as it was, the model encodes every image at every step). Columns:

* before: samples/s, median step after the first (warm-up) step, frozen-encoder path off;
* epoch 1: samples/s in the first epoch (every image new to the feature cache), first step left out;
* epoch 2+: samples/s once every line's features are cached (what later epochs of a long run see);
* RSS: peak resident memory of the child, MiB.

Image size 1024 is GOT's real input (256 image tokens per line); 256 is the project's small test size (16 tokens).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def run(spec: dict, threads: int) -> dict:
    result = c.run_measured([sys.executable, str(Path(__file__).parent / "_train_child.py"), json.dumps(spec)],
                            env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    parsed = c.last_json_line(result["output"])
    if parsed is None:
        raise SystemExit(f"child failed ({result['returncode']}):\n{result['output'][-3000:]}")
    parsed["tree_peak_rss"] = result["peak_rss"]
    return parsed


def rate(result: dict, steps: slice) -> float:
    times = result["step_s"][steps]
    return result["samples_per_step"] / c.median(times) if times else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 256])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--checkpointing", choices=["off", "on", "both"], default="both")
    p.add_argument("--lines", type=int, default=24, help="training lines (one epoch = lines / batch steps)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (1: steadiest on a shared CPU)")
    p.add_argument("--workers", type=int, nargs="+", default=[0],
                   help="--dataloader_num_workers values to compare (alternated)")
    p.add_argument("--no_before", action="store_true", help="skip the frozen-encoder-off runs")
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args(argv)

    data = c.line_folder(args.lines, seed=1)
    gcs = {"off": [False], "on": [True], "both": [False, True]}[args.checkpointing]
    rows, raw = [], []
    for size in args.sizes:
        model = c.tiny_model(size)
        for batch in args.batches:
            per_epoch = max(1, args.lines // batch)
            for gc, workers in [(gc, w) for gc in gcs for w in args.workers]:
                spec = {"model": str(model), "data_dir": str(data), "batch_size": batch, "threads": args.threads,
                        "steps": per_epoch * args.epochs, "gradient_checkpointing": gc, "workers": workers}
                after = run(spec, args.threads)
                before = None if args.no_before else run({**spec, "steps": per_epoch + 1, "baseline": True},
                                                          args.threads)
                raw.append({"spec": spec, "after": after, "before": before})
                rows.append([size, batch, "on" if gc else "off", workers,
                             "-" if before is None else f"{rate(before, slice(1, None)):.2f}",
                             f"{rate(after, slice(1, per_epoch)):.2f}",
                             f"{rate(after, slice(per_epoch, None)):.2f}",
                             "-" if before is None else c.mib(before["peak_rss"]), c.mib(after["peak_rss"])])
                print(f"[bench] size {size} batch {batch} checkpointing {gc} workers {workers}: {rows[-1][4:]}",
                      file=sys.stderr,
                      flush=True)
    print(f"# training throughput (samples/s), LoRA r8 on the language model, tiny GOT-OCR2, {args.lines} lines")
    print(f"# {c.machine()}; torch threads per run: {args.threads}")
    print(c.table(["image", "batch", "grad ckpt", "workers", "before", "epoch 1", "epoch 2+", "RSS before MiB",
                   "RSS after MiB"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
