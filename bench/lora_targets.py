#!/usr/bin/env python
"""Which LoRA targets adapt a model that reads Hindi to a font it has never seen: the language model only, the
vision encoder too, or the projector too?

Small, CPU-sized regime (the tests' tiny model): a base is fine-tuned in full from scratch until it reads
``--lines`` lines rendered in ``--base_font``; each arm then trains a LoRA adapter (real ``train.py``) on as many
OTHER lines rendered in ``--adapt_font``, and a real ``infer.py --data_dir`` scores the adapter on those lines. It
measures how fast each choice of targets learns new glyph shapes, not generalisation (see
bench/learning_curve.py for that). Arms run one after another with the same steps, data and seed.

    python bench/lora_targets.py --max_steps 150
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _common as c  # noqa: E402

ARMS = {
    "language model": [],
    "language model + vision": ["--lora_vision"],
    "language model + projector": ["--train_projector"],
}
SCORE_LINE = re.compile(r"^CER ([\d.]+) WER ([\d.]+) grapheme_CER ([\d.]+) \(n=(\d+)\)$", re.M)
BASE_RECIPE = ["--learning_rate", "3e-4", "--max_steps", "200"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(c.BENCH_DIR / "lora-targets"))
    p.add_argument("--lines", type=int, default=16, help="lines for the base, and as many new ones to adapt to")
    p.add_argument("--base_font", default="Hind-Regular")
    p.add_argument("--adapt_font", default="Poppins-Regular")
    p.add_argument("--line_layout", default="squash", choices=["squash", "letterbox", "fold"])
    p.add_argument("--max_steps", type=int, default=150, help="LoRA steps per arm (one step = every line)")
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--lora_r", type=int, default=16)
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of: {', '.join(ARMS)}")
    return p.parse_args(argv)


def folders(args, out: Path) -> tuple[Path, Path]:
    """Seed-layout folders: base lines in the base font, other lines in the font to adapt to."""
    from hindi_ocr.render import generate_lines, write_line_folder

    texts = generate_lines(2 * args.lines, seed=5, min_words=2, max_words=4)
    made = []
    for name, lines, font in (("base", texts[: args.lines], args.base_font),
                              ("adapt", texts[args.lines:], args.adapt_font)):
        folder = out / f"{name}-{font}"
        if not (folder / "data.csv").is_file():
            write_line_folder(folder, lines, font=font, size=32)
        made.append(folder)
    return made[0], made[1]


def train(model: str, data: Path, run_dir: Path, args, *extra: str) -> dict:
    cmd = [sys.executable, str(c.REPO / "train.py"), "--model_name_or_path", model, "--data_dir", str(data),
           "--dataset_options", "validation_ratio=0,test_ratio=0", "--line_layout", args.line_layout,
           "--output_dir", str(run_dir), "--overwrite_output_dir", "--lr_scheduler_type", "constant_with_warmup",
           "--warmup_steps", "20", "--adam_beta2", "0.98", "--weight_decay", "0", "--max_grad_norm", "1.0",
           "--per_device_train_batch_size", str(args.lines), "--gradient_accumulation_steps", "1",
           "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--max_target_tokens", "32",
           "--seed", "0", "--use_cpu", *extra]
    result = c.run_measured(cmd, log=run_dir.with_suffix(".train.log"))
    if result["returncode"]:
        raise SystemExit(f"train.py failed, see {run_dir.with_suffix('.train.log')}")
    return result


def read(model_flags: list[str], data: Path, log: Path) -> dict:
    """infer.py on a seed-layout folder; its last line's CER/WER/grapheme_CER."""
    result = c.run_measured([sys.executable, str(c.REPO / "infer.py"), *model_flags, "--data_dir", str(data),
                             "--batch_size", "32", "--max_new_tokens", "40"], log=log)
    found = SCORE_LINE.findall(result["output"])
    if result["returncode"] or not found:
        raise SystemExit(f"infer.py failed, see {log}")
    cer, wer, gcer, n = found[-1]
    return {"cer": float(cer), "wer": float(wer), "grapheme_cer": float(gcer), "n": int(n)}


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base_data, adapt_data = folders(args, out)
    init = c.tiny_model(256)
    base = out / f"base-{args.line_layout}"
    train(str(init), base_data, base, args, "--no_use_lora", *BASE_RECIPE)
    base_reads = read(["--model_name_or_path", str(base)], base_data, out / "base-on-base.infer.log")
    rows = [["base, no adapter", "-", *_cells(read(["--model_name_or_path", str(base)], adapt_data,
                                                    out / "base-on-new.infer.log"))]]
    for name in filter(None, (a.strip() for a in args.arms.split(","))):
        if name not in ARMS:
            raise SystemExit(f"--arms: unknown arm {name!r}; choose from {', '.join(ARMS)}")
        run_dir = out / f"{args.line_layout}-{re.sub(r'[^a-z]+', '-', name)}"
        trained = train(str(base), adapt_data, run_dir, args, "--lora_r", str(args.lora_r), "--lora_alpha",
                        str(2 * args.lora_r), "--lora_dropout", "0", "--learning_rate", str(args.learning_rate),
                        "--max_steps", str(args.max_steps), *ARMS[name])
        scores = read(["--model_name_or_path", str(base), "--adapter", str(run_dir)], adapt_data,
                      run_dir.with_suffix(".infer.log"))
        rows.append([name, f"{trained['wall_s']:.0f}", *_cells(scores)])
        print(rows[-1], flush=True)
    print(f"\n{c.machine()}\nbase: tiny model, full fine-tuning {' '.join(BASE_RECIPE)} on {args.lines} lines in "
          f"{args.base_font} (reads them: CER {base_reads['cer']:.4f}); adapters: {args.max_steps} steps on "
          f"{args.lines} other lines in {args.adapt_font}, r {args.lora_r}, lr {args.learning_rate}, layout "
          f"{args.line_layout}; CER on those lines\n")
    print(c.table(["LoRA targets", "train s", "CER", "WER", "grapheme CER", "n"], rows))


def _cells(scores: dict) -> list[str]:
    return [f"{scores['cer']:.4f}", f"{scores['wer']:.4f}", f"{scores['grapheme_cer']:.4f}", str(scores["n"])]


if __name__ == "__main__":
    main()
