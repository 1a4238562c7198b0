#!/usr/bin/env python
"""Reading on 1 and 2 processes: ``infer.py`` alone and under ``torchrun --nproc_per_node 2`` on the same lines.

    python bench/read_scale.py                      # 24 lines, tiny GOT-OCR2 at 1024x1024, batch 4, 1 thread each
    python bench/read_scale.py --lines 64 --processes 1 2 --size 256

Each run is the command a user types (a child process, ``OMP_NUM_THREADS=1`` per process, so N processes use N
cores); lines/s is infer.py's own figure for reading (``N lines read in S s``: from the first batch to the last
write, gathering included; model loading and process start-up excluded), and the wall time of the whole command is
shown beside it. The runs' outputs are compared: N processes must write the bytes 1 process writes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

SPEED = re.compile(r"(\d+) lines read in ([\d.]+) s \(([\d.]+) lines/s\) by (\d+) process")


def run(processes: int, args, model: Path, lines: Path, output: Path) -> tuple[float, float]:
    """(lines/s of reading, wall seconds of the command)."""
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*launcher, str(c.REPO / "infer.py"), "--model_name_or_path", str(model), "--data_dir", str(lines),
               "--batch_size", str(args.batch_size), "--max_new_tokens", str(args.new_tokens), "--output", str(output)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(c.REPO)}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    match = SPEED.search(proc.stderr)
    return float(match.group(3)), wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="the tiny model's image side (1024: GOT's input)")
    p.add_argument("--lines", type=int, default=24)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--new_tokens", type=int, default=16, help="--max_new_tokens per line")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = p.parse_args(argv)

    model, lines = c.tiny_model(args.size), c.line_folder(args.lines)
    out_dir = c.BENCH_DIR / "read_scale"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, outputs = [], {}
    for n in args.processes:
        outputs[n] = out_dir / f"predictions-{n}.jsonl"
        speed, wall = run(n, args, model, lines, outputs[n])
        rows.append((n, speed, wall))
        print(f"{n} process(es): {speed:.2f} lines/s reading, {wall:.1f} s for the command", flush=True)
    same = len({outputs[n].read_bytes() for n in args.processes}) == 1
    base = rows[0][1]
    print(f"\n{args.lines} lines, tiny GOT-OCR2 at {args.size}x{args.size}, batch {args.batch_size}, up to "
          f"{args.new_tokens} new tokens per line, {os.cpu_count()} CPU cores, 1 thread per process; outputs "
          f"{'byte-identical' if same else 'DIFFER'}\n")
    print("| processes | lines/s (reading) | × 1 process | command wall time (s) |\n| --- | --- | --- | --- |")
    for n, speed, wall in rows:
        print(f"| {n} | {speed:.2f} | {speed / base:.2f} | {wall:.1f} |")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
