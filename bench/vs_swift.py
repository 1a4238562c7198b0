#!/usr/bin/env python
"""ms-swift (`swift sft`, the seed notebook's trainer) against our train.py: same model, same lines, same recipe.

    python bench/vs_swift.py --install               # once: ms-swift into its own venv (default /tmp/swift-venv)
    python bench/vs_swift.py                         # 2 rounds x (4 and 12 optimizer steps), alternating
    python bench/vs_swift.py --lines 64 --epochs 1 3 --lines_per_page 8 --rounds 1   # pages against ms-swift

Both train LoRA r8 / alpha 32 / dropout 0.05, lr 2e-5, batch 1 x 4 accumulation, fp32, on the project's tiny
random-init GOT-OCR2 at GOT's real input size (1024 x 1024, 256 image tokens: ms-swift's got_ocr2_hf template writes
exactly 256 ``<imgpad>``), from the SAME model folder and the SAME rendered lines, written both as a seed CSV folder
(train.py --data_dir) and as ms-swift JSON rows ``{"query", "response", "images"}`` (swift sft --dataset).
Each side keeps its own defaults otherwise (ms-swift: gradient checkpointing on; ours: off).

Reported per run: the Trainer's own ``train_samples_per_second`` (both are transformers Trainers; the training
loop only), the whole command's wall time (imports, model and data loading, saving), and the peak RSS of the
command's process tree. 4 steps = one epoch of the 16 lines (every image new); 12 steps = three epochs.

``--epochs E ...`` replaces ``--steps``: each side trains E passes over the same L lines (ms-swift: L / 4 steps
per epoch; train.py with ``--lines_per_page N``: its pages / 4 steps, a batch being 1 page x 4 accumulation).
With ``--lines_per_page N`` (N > 1) train.py runs twice, one line per image and pages of N, and the
``ratio ours / swift`` row compares the pages run with ms-swift. "train samples/s" is lines/s on every row
(train.py's ``train_lines_per_second``; ms-swift's samples are lines).

If ms-swift is missing or fails, the table says why (its exit code and last error line), and the full log is kept.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

QUERY = "<image>Transcribe the text in this image"


def install(venv: Path) -> None:
    """ms-swift in its own venv; the CPU torch first, so pip does not pull a CUDA build."""
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(venv / "bin" / "pip"), "install", "torch==2.13.0"],
             [str(venv / "bin" / "pip"), "install", "ms-swift"]]
    for cmd in steps:
        print("[bench] $", " ".join(cmd), file=sys.stderr, flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"ms-swift could not be installed: `{' '.join(cmd)}` exited {done.returncode}:\n"
                             f"{(done.stderr or done.stdout)[-3000:]}")


def versions(venv: Path) -> str:
    code = ("import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
            "('ms-swift', 'transformers', 'peft', 'torch')))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()[-300:]


def swift_cmd(venv: Path, model: Path, rows: Path, out: Path, steps: int, tuner_flag: str) -> list[str]:
    return [str(venv / "bin" / "swift"), "sft", "--model", str(model), "--model_type", "got_ocr2_hf",
            tuner_flag, "lora", "--lora_rank", "8", "--lora_alpha", "32", "--lora_dropout", "0.05",
            "--target_modules", "all-linear", "--learning_rate", "2e-5", "--per_device_train_batch_size", "1",
            "--gradient_accumulation_steps", "4", "--max_steps", str(steps), "--dataset", str(rows),
            "--torch_dtype", "float32", "--fp16", "false", "--output_dir", str(out), "--report_to", "none",
            "--logging_steps", "1", "--dataloader_num_workers", "0", "--split_dataset_ratio", "0"]


def ours_cmd(model: Path, data: Path, out: Path, steps: int, lines_per_page: int = 1) -> list[str]:
    return [sys.executable, str(c.REPO / "train.py"), "--model_name_or_path", str(model), "--data_dir", str(data),
            "--dataset_options", "validation_ratio=0,test_ratio=0", "--output_dir", str(out),
            "--overwrite_output_dir", "true", "--max_steps", str(steps), "--eval_strategy", "no",
            "--save_strategy", "no", "--report_to", "none", "--logging_steps", "1", "--disable_tqdm", "true",
            "--lines_per_page", str(lines_per_page)]


def steps_for(who: str, lines: int, epochs: int, lines_per_page: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``lines`` at 4 samples (lines, or pages) per step."""
    from hindi_ocr.pages import page_sizes

    samples = lines if who in ("swift", "ours") else len(page_sizes(lines, lines_per_page, random.Random(0)))
    return math.ceil(samples / 4) * epochs


def swift_metrics(output: str) -> dict | None:
    found = None
    for match in re.finditer(r"\{'train_runtime': .*?\}", output):
        found = match.group(0)
    if not found:
        return None
    values = dict(re.findall(r"'(\w+)': '?([0-9.eE+-]+)'?", found))
    return {k: float(v) for k, v in values.items() if k in ("train_runtime", "train_samples_per_second")}


def why_failed(output: str, code: int) -> str:
    errors = [line for line in output.splitlines() if re.search(r"(Error|Exception|error:)", line)]
    return f"exit {code}: {(errors[-1] if errors else output.strip().splitlines()[-1:] or [''])[0][:300]}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--swift_venv", type=Path, default=Path(os.environ.get("SWIFT_VENV", "/tmp/swift-venv")))
    p.add_argument("--install", action="store_true", help="create the venv and pip install ms-swift, then run")
    p.add_argument("--steps", type=int, nargs="+", default=[4, 12])
    p.add_argument("--epochs", type=int, nargs="+", help="passes over the lines (replaces --steps)")
    p.add_argument("--lines_per_page", type=int, default=1, help="N > 1: also train.py with pages of N lines")
    p.add_argument("--lines", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="OMP threads for both (1: steadiest on a shared CPU)")
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args(argv)

    if args.install and not (args.swift_venv / "bin" / "swift").exists():
        install(args.swift_venv)
    model, data = c.tiny_model(1024), c.line_folder(args.lines, seed=3)
    rows = data / "rows.json"
    runs = c.BENCH_DIR / "runs" / "vs_swift"
    runs.mkdir(parents=True, exist_ok=True)  # a clean machine has no bench folder yet
    env = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}

    swift_ok, swift_problem, tuner_flag = (args.swift_venv / "bin" / "swift").exists(), None, "--tuner_type"
    if not swift_ok:
        swift_problem = (f"ms-swift is not installed at {args.swift_venv} (run with --install, or --swift_venv "
                         "pointing at a venv with ms-swift)")
    else:  # ms-swift 4 renamed --train_type to --tuner_type: ask the installed one which it has
        probe = ("from swift.arguments import SftArguments as A; "
                 "print('tuner_type' if 'tuner_type' in A.__dataclass_fields__ else 'train_type')")
        done = subprocess.run([str(args.swift_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                              env={**os.environ, **c.OFFLINE_ENV})
        if done.returncode:
            swift_ok, swift_problem = False, f"importing ms-swift failed: {why_failed(done.stderr, done.returncode)}"
        else:
            tuner_flag = "--" + done.stdout.strip().splitlines()[-1]

    results, steps_of = {}, {}
    paged = args.lines_per_page > 1
    budgets = args.epochs or args.steps  # the table's first column: epochs, or steps for every side
    for round_ in range(args.rounds):
        for budget in budgets:
            contenders = (["swift"] if swift_ok else []) + ["ours"] + (["pages"] if paged else [])
            if round_ % 2:
                contenders.reverse()
            for who in contenders:
                steps = steps_for(who, args.lines, budget, args.lines_per_page) if args.epochs else budget
                steps_of[(who, budget)] = steps
                out = runs / f"{who}-{budget}-{round_}"
                cmd = (swift_cmd(args.swift_venv, model, rows, out, steps, tuner_flag) if who == "swift"
                       else ours_cmd(model, data, out, steps, args.lines_per_page if who == "pages" else 1))
                result = c.run_measured(cmd, env=env, cwd=str(runs.parent), log=runs / f"{out.name}.log",
                                        timeout=args.timeout)
                if who == "swift":
                    metrics = swift_metrics(result["output"])
                else:
                    path = out / "train_results.json"
                    metrics = json.loads(path.read_text()) if path.is_file() and not result["returncode"] else None
                if result["returncode"] or metrics is None:
                    problem = why_failed(result["output"], result["returncode"])
                    if who == "swift":
                        swift_ok, swift_problem = False, f"swift sft failed ({problem}); log: {runs}/{out.name}.log"
                        print(f"[bench] {swift_problem}", file=sys.stderr, flush=True)
                        continue
                    raise SystemExit(f"train.py failed ({problem}); log: {runs}/{out.name}.log")
                lps = metrics.get("train_lines_per_second", metrics["train_samples_per_second"])  # lines/s
                results.setdefault((who, budget), []).append(
                    {"sps": lps, "wall": result["wall_s"], "rss": result["peak_rss"]})
                print(f"[bench] round {round_} {who} {budget} {'epochs' if args.epochs else 'steps'} ({steps} "
                      f"steps): {lps:.3f} lines/s, wall {result['wall_s']:.0f} s, RSS {c.mib(result['peak_rss'])} "
                      "MiB", file=sys.stderr, flush=True)

    table = []
    mine = "pages" if paged else "ours"  # what the ratio row compares with ms-swift
    for budget in budgets:
        sides = {}
        for who in ("swift", "ours", "pages"):
            got = results.get((who, budget))
            if got:
                sides[who] = {k: c.median([g[k] for g in got]) for k in ("sps", "wall", "rss")}
                sides[who]["rss"] = max(g["rss"] for g in got)
        labels = [("swift", "ms-swift swift sft"), ("ours", "train.py")]
        labels += [("pages", f"train.py --lines_per_page {args.lines_per_page}")] if paged else []
        for who, label in labels:
            s = sides.get(who)
            if args.epochs:
                label += f" ({steps_of.get((who, budget), '?')} steps)"
            table.append([f"{budget} epoch{'s' * (budget > 1)}" if args.epochs else budget, label,
                          f"{s['sps']:.3f}" if s else "failed", f"{s['wall']:.0f}" if s else "-",
                          c.mib(s["rss"]) if s else "-"])
        if "swift" in sides and mine in sides:
            table.append([table[-1][0], "ratio ours / swift", f"{sides[mine]['sps'] / sides['swift']['sps']:.2f}x",
                          f"{sides['swift']['wall'] / sides[mine]['wall']:.2f}x faster",
                          f"{sides[mine]['rss'] / sides['swift']['rss']:.2f}"])
    pages_note = (f"; ratio row: train.py with pages of {args.lines_per_page} lines against ms-swift" if paged else "")
    print(f"# ms-swift vs train.py: tiny GOT-OCR2 at 1024x1024 (256 image tokens), LoRA r8, batch 1 x 4, fp32, "
          f"{args.lines} lines; median of {args.rounds} rounds (peak RSS: max); samples/s = lines/s{pages_note}")
    print(f"# {c.machine()}; OMP threads: {args.threads}")
    have_python = (args.swift_venv / "bin" / "python").exists()
    print(f"# ms-swift side: {versions(args.swift_venv) if have_python else 'absent'}")
    if swift_problem:
        print(f"# ms-swift could not be measured: {swift_problem}")
    print(c.table(["epochs" if args.epochs else "steps", "run", "train samples/s", "wall s", "peak RSS MiB"], table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
