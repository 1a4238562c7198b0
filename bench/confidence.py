#!/usr/bin/env python
"""Does the per-line confidence (hindi_ocr.generation) rank errors? The CER of the lowest-confidence decile of held-out
lines against the CER of the rest, read by a model that reads imperfectly.

    python bench/confidence.py [--lines 320] [--steps 900]

The model: configs/smoke.yaml's optimiser on the random-init tiny model, trained in full (the quick start before
it adapted the shipped reader) on a 20-word vocabulary for 900 steps (about 3 minutes on 2 cores), trained once into $HINDI_OCR_BENCH_DIR and
reused. The lines: ``--lines`` test lines of the same dataset config (word sequences it never trained on), read as
``infer.py`` reads them. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_DIR, REPO, machine  # noqa: E402

SMOKE = REPO / "configs" / "smoke.yaml"
DATA = "vocabulary=20,min_words=2,max_words=3,fonts=Hind-Regular,font_size=32,train_lines=1000,validation_lines=32"


def trained_model(steps: int, test_lines: int) -> Path:
    """The short quick-start model (train.py in a child process), trained once."""
    out = BENCH_DIR / f"confidence-smoke-{steps}-{test_lines}"
    if (out / "model.safetensors").is_file():
        return out
    from hindi_ocr.tiny import build_tiny_model

    tiny = build_tiny_model(BENCH_DIR / f"confidence-tiny-{steps}-{test_lines}")
    subprocess.run([sys.executable, str(REPO / "train.py"), str(SMOKE), "--model_name_or_path", str(tiny),
                    "--output_dir", str(out), "--dataset_options", f"{DATA},test_lines={test_lines}",
                    "--no_use_lora", "--train_projector", "false", "--learning_rate", "1e-3",
                    "--lr_scheduler_type", "constant_with_warmup", "--warmup_steps", "50", "--eval_on_start", "false",
                    "--max_target_tokens", "32",
                    "--max_steps", str(steps), "--eval_steps", str(steps // 3), "--save_strategy", "no",
                    "--load_best_model_at_end", "false", "--report_to", "none", "--dataloader_num_workers", "0",
                    "--overwrite_output_dir"], check=True)
    return out


def test_folder(steps: int, test_lines: int) -> Path:
    """The test split as a seed-layout folder (data.csv + images) that infer.py reads."""
    folder = BENCH_DIR / f"confidence-test-{test_lines}"
    if (folder / "data.csv").is_file():
        return folder
    from hindi_ocr.arguments import parse_options
    from hindi_ocr.data import load_line_dataset

    options = parse_options(f"{DATA},test_lines={test_lines}")
    test = load_line_dataset(**options)["test"]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, row in enumerate(test):
        row["image"].save(folder / "images" / f"{i:04d}.png")
        rows.append((f"images/{i:04d}.png", row["text"]))
    import csv

    with open(folder / "data.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("image_file", "text")] + rows)
    return folder


def min_token_probs(reader, lines, batch_size: int) -> list[float]:
    """The other candidate statistic: each line's least likely chosen token (same generation as infer.py)."""
    import math

    import torch

    from hindi_ocr.examples import OcrExampleBuilder
    from hindi_ocr.generation import TokenLogProbs, end_ids, finished_rows, generation_kwargs
    from hindi_ocr.inference import open_line

    builder, out = OcrExampleBuilder(reader.processor, line_layout=reader.line_layout), []
    for start in range(0, len(lines), batch_size):
        inputs = builder.prompt_inputs([open_line(line) for line in lines[start : start + batch_size]])
        recorder, length = TokenLogProbs(), inputs["input_ids"].shape[1]
        with torch.inference_mode():
            new = reader.model.generate(**inputs, **generation_kwargs(length, recorder))[:, length:]
        logprobs = recorder.values(new)
        used, _ = finished_rows(new, end_ids(reader.processor.tokenizer))
        out += [math.exp(float(logprobs[i, :n].min())) for i, n in enumerate(used)]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=320, help="held-out test lines read")
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--batch_size", type=int, default=32)
    args = p.parse_args(argv)

    from hindi_ocr import compare
    from hindi_ocr.inference import lines_from_data_dir
    from hindi_ocr.scoring import line_cer, score

    model = trained_model(args.steps, args.lines)
    lines = lines_from_data_dir(str(test_folder(args.steps, args.lines)))
    reader = compare.load_reader(str(model), None, max_new_tokens=33)
    reading = compare.read_with_model(reader, lines, args.batch_size)
    statistics_ = {"geometric mean (confidence)": [g.confidence for g in reading.generated],
                   "least likely token": min_token_probs(reader, lines, args.batch_size)}

    def cells(part):
        preds, refs = [r[1] for r in part], [r[2].reference for r in part]
        cers = [line_cer(p, t) for p, t in zip(preds, refs)]
        return [f"{score(preds, refs)['cer']:.3f}", f"{statistics.mean(cers):.3f}",
                f"{sum(c == 0 for c in cers) / len(cers):.2f}", f"{statistics.mean(r[0] for r in part):.3f}", len(part)]

    print(f"{len(lines)} held-out lines read by the short quick-start model ({args.steps} steps); {machine()}\n")
    print("| statistic | lines | CER | mean line CER | share read exactly | mean statistic | n |\n"
          "|---|---|---|---|---|---|---|")
    for stat, values in statistics_.items():
        rows = sorted(zip(values, reading.predictions, lines), key=lambda r: r[0])
        cut = max(1, len(rows) // 10)
        for name, part in (("lowest decile", rows[:cut]), ("the other 90%", rows[cut:]), ("all", rows)):
            print(f"| {stat} | {name} | " + " | ".join(str(c) for c in cells(part)) + " |")


if __name__ == "__main__":
    main()
