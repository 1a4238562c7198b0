#!/usr/bin/env python
"""Does training generalise? A compact GOT-OCR2 trained from scratch, scored on lines it could not have memorised.

Training lines are rendered on the fly (never the same image twice) from words of ``../shared/corpus``'s word lists
in some font families; the held-out lines are other text (Common Voice sentences) in OTHER font families. The run
goes through the project's own Trainer (``hindi_ocr.training.build_trainer``: the same collator, generation-based
CER/WER) and stops at a wall-clock budget. Output in ``--out``: ``curve.csv`` (elapsed seconds, step, train loss,
held-out CER/WER/grapheme CER), ``curve.png``, the final model (``model/``) and the held-out folder in the seed
layout (``heldout/``: data.csv + images) for ``bench/vs_tesseract.py`` / ``infer.py --report``.

    python bench/learning_curve.py --minutes 30 --out /tmp/learning-curve
    python bench/learning_curve.py --minutes 60 --line_layout fold --out /tmp/lc-fold
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import REPO, machine  # noqa: E402  (also sets the offline environment)
from hindi_ocr.pretrain import heldout_texts  # noqa: E402,F401  (the issue-8 held-out text, shared with the reader)

CORPUS = REPO.parent / "shared" / "corpus"
TRAIN_FAMILIES = "Noto Sans Devanagari,Hind,Baloo 2,Rajdhani,Kalam,Teko"
HELDOUT_FAMILIES = "Mukta,Poppins"
ZERO_WIDTH = {"\u200c", "\u200d"}

# Sized to learn on 2 CPU cores: ~4x the test model's width, twice its depth.
COMPACT = {
    "vision_hidden_size": 128,
    "vision_num_hidden_layers": 4,
    "vision_num_attention_heads": 4,
    "vision_mlp_dim": 512,
    "vision_output_channels": 64,
    "vision_global_attn_indexes": (1, 3),
    "text_hidden_size": 256,
    "text_num_hidden_layers": 4,
    "text_num_attention_heads": 4,
    "text_num_key_value_heads": 2,
    "text_intermediate_size": 768,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/hindi-ocr-bench/learning-curve", help="folder for CSV, PNG, model")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget (evaluations included)")
    p.add_argument("--eval_every", type=int, default=300, help="evaluate every N optimiser steps")
    p.add_argument("--heldout_lines", type=int, default=64)
    p.add_argument("--train_fonts", default=TRAIN_FAMILIES)
    p.add_argument("--heldout_fonts", default=HELDOUT_FAMILIES)
    p.add_argument("--line_layout", default="squash", choices=["squash", "letterbox", "fold"])
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--size", default="compact", choices=["compact", "tiny"], help="compact, or the tests' tiny model")
    p.add_argument("--patch_size", type=int, default=None, help="vision patch size (default: the preset's)")
    p.add_argument("--vocab", type=int, default=0,
                   help="N > 0: train and held-out lines are both drawn from wordfreq's N commonest Hindi words "
                        "(held-out lines are new word sequences); 0: corpus words / Common Voice text")
    p.add_argument("--clean", action="store_true",
                   help="render every line at one font size without noise or tilt (the quick start's data)")
    p.add_argument("--max_steps", type=int, default=10**7, help="stop after this many optimiser steps")
    p.add_argument("--lr_schedule", default="constant_with_warmup")
    p.add_argument("--warmup_steps", type=int, default=100)
    p.add_argument("--label_smoothing", type=float, default=0.0)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers rendering lines")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hindi_ocr.tiny setting, e.g. --set text_num_hidden_layers=3")
    p.add_argument("--learning_rate", type=float, default=3e-4)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--min_words", type=int, default=2)
    p.add_argument("--max_words", type=int, default=4)
    p.add_argument("--line_height", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    p.add_argument("--tesseract", action="store_true", help="also score Tesseract (hin) on the held-out lines")
    p.add_argument("--init", help="continue from this model folder (a previous run's model/; optimizer restarts)")
    p.add_argument("--plot_only", action="store_true", help="only redraw curve.png from --out's curve.csv")
    p.add_argument("--compare", nargs="+", metavar="RUN_DIR",
                   help="draw these finished runs' curves (held-out CER and loss against step) into --out (a .png)")
    return p.parse_args(argv)


def word_pool() -> list[str]:
    """Training words: the Tesseract langdata word list and word sequences, plus the digit/punctuation lines.

    Dropped: items with ZWJ/ZWNJ or ending in a virama. hin_singles_text holds ~1,400 such conjunct fragments
    (``र्जु्‌``); in an early run they were enough for an untrained model to answer every line with one of them.
    """
    from hindi_ocr.render import read_text_lines

    words = set()
    for name in ("hin_wordlist.txt", "hin_singles_text.txt", "hin_training_text.txt"):
        for line in read_text_lines(CORPUS / name):
            words.update(w for w in line.split() if not ZERO_WIDTH.intersection(w) and not w.endswith("\u094d"))
    return sorted(words)


def vocabulary_texts(words, n: int, seed: int, min_words: int, max_words: int, exclude=()) -> list[str]:
    """``n`` distinct lines of ``min_words``..``max_words`` words drawn uniformly from ``words``, none in ``exclude``."""
    rng = np.random.default_rng([seed, 11])
    texts, exclude = [], set(exclude)
    while len(texts) < n:
        count = int(rng.integers(min_words, max_words + 1))
        text = " ".join(words[i] for i in rng.integers(0, len(words), count))
        if text not in exclude and text not in texts:
            texts.append(text)
    return texts


class RenderedLines(torch.utils.data.IterableDataset):
    """An endless stream of freshly rendered lines: words drawn at random, a random training face, mild noise."""

    def __init__(self, words, fonts, seed, min_words, max_words, height, exclude=(), clean=False):
        self.words, self.fonts, self.seed, self.exclude = words, fonts, seed, set(exclude)
        self.clean = clean
        self.min_words, self.max_words, self.height = min_words, max_words, height

    def __iter__(self):
        from hindi_ocr.render import render_sample

        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0, int(time.time())])
        while True:
            count = int(rng.integers(self.min_words, self.max_words + 1))
            text = " ".join(self.words[i] for i in rng.integers(0, len(self.words), count))
            if text in self.exclude:  # a held-out line is never trained on
                continue
            image, _ = render(text, rng, self.fonts, self.height, self.clean)
            yield {"image": image.convert("RGB"), "text": text}


def render(text, rng, fonts, height, clean):
    """A line image: ``render_sample``'s random face, size and scan noise, or (``clean``) a random face at half
    the line height, black on white, no noise (the quick start's lines)."""
    from hindi_ocr.render import render_sample

    return render_sample(text, rng, fonts, height, font_size=height // 2 if clean else 0)


def heldout_folder(out: Path, texts, fonts, seed: int, height: int, clean: bool = False) -> Path:
    """The held-out lines as a seed-layout folder (data.csv + output_images/N__Face.png) and a datasets.Dataset."""
    from hindi_ocr.render import render_sample

    folder = out / "heldout"
    (folder / "output_images").mkdir(parents=True, exist_ok=True)
    with open(folder / "data.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_file", "text"])
        for i, text in enumerate(texts):
            image, face = render(text, np.random.default_rng([seed, 7, i]), fonts, height, clean)
            name = f"{i:04d}__{face.name}.png"
            image.save(folder / "output_images" / name)
            writer.writerow([name, text])
    return folder


def as_dataset(folder: Path):
    import datasets

    with open(folder / "data.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return datasets.Dataset.from_dict(
        {"image": [str(folder / "output_images" / r["image_file"]) for r in rows], "text": [r["text"] for r in rows]},
        features=datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")}),
    )


class Budget:
    """Trainer callback: stop (with a last evaluation) once ``seconds`` have passed; record every log with its time."""

    def __init__(self, seconds: float):
        from transformers import TrainerCallback

        self.seconds, self.start, self.rows = seconds, None, []
        budget = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                budget.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                if time.perf_counter() - budget.start >= budget.seconds:
                    control.should_training_stop = True
                    control.should_evaluate = True

            def on_log(self, args, state, control, logs=None, **kwargs):
                budget.rows.append({"seconds": round(time.perf_counter() - budget.start, 1), "step": state.global_step,
                                    **(logs or {})})

        self.callback = Callback()


def build(args, out: Path):
    from hindi_ocr.render import devanagari_fonts
    from hindi_ocr.tiny import build_tiny_model, load_tiny
    from hindi_ocr.arguments import DataArguments, OcrTrainingArguments
    from hindi_ocr.training import build_trainer
    from hindi_ocr.modeling import configure_generation

    overrides = dict(COMPACT if args.size == "compact" else {})
    if args.patch_size:
        overrides["patch_size"] = args.patch_size
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    model_dir = args.init or build_tiny_model(out / "init", image_size=args.image_size, seed=args.seed, **overrides)
    model, processor = load_tiny(model_dir)
    configure_generation(model, processor, max_new_tokens=48)
    if args.vocab:
        from hindi_ocr.render import common_words

        words = list(common_words(args.vocab))
        texts = vocabulary_texts(words, args.heldout_lines, args.seed, args.min_words, args.max_words)
    else:
        words = word_pool()
        texts = heldout_texts(args.heldout_lines, args.seed, args.min_words, args.max_words)
    train = RenderedLines(words, devanagari_fonts(args.train_fonts), args.seed, args.min_words,
                          args.max_words, args.line_height, exclude=texts, clean=args.clean)
    heldout = heldout_folder(out, texts, devanagari_fonts(args.heldout_fonts), args.seed, args.line_height,
                             args.clean)
    training_args = OcrTrainingArguments(
        output_dir=str(out / "run"), overwrite_output_dir=True, max_steps=args.max_steps,
        learning_rate=args.learning_rate, lr_scheduler_type=args.lr_schedule, warmup_steps=args.warmup_steps,
        label_smoothing_factor=args.label_smoothing, adam_beta2=0.98, weight_decay=0.0,
        max_grad_norm=1.0, per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
        per_device_eval_batch_size=32, eval_strategy="steps", eval_steps=args.eval_every, save_strategy="no",
        logging_steps=50, report_to="none", dataloader_num_workers=args.workers, seed=args.seed, use_cpu=True,
        load_best_model_at_end=False, generation_max_length=None,
    )
    data_args = DataArguments(line_layout=args.line_layout, num_sample_predictions=2)
    trainer = build_trainer(model, processor, {"train": train, "validation": as_dataset(heldout)}, data_args,
                            training_args)
    return trainer, heldout


CURVE_FIELDS = ["seconds", "step", "loss", "eval_cer", "eval_wer", "eval_grapheme_cer", "eval_loss"]


def write_curve(rows: list[dict], out: Path) -> None:
    """curve.csv: one row per training-loss log and per held-out evaluation."""
    with open(out / "curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CURVE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r for r in rows if "loss" in r or "eval_cer" in r)


def read_curve(out: Path) -> tuple[list[dict], list[dict]]:
    """(training-loss rows, evaluation rows) of curve.csv, numbers as floats."""
    with open(out / "curve.csv", newline="") as f:
        rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
    return [r for r in rows if "loss" in r], [r for r in rows if "eval_cer" in r]


def plot_curve(out: Path, tesseract: dict | None) -> Path:
    """curve.png: train loss, and held-out CER/WER (with Tesseract's CER on the same lines), against minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = read_curve(out)
    fig, (ax_loss, ax_cer) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot([r["seconds"] / 60 for r in train], [r["loss"] for r in train], color="tab:grey")
    ax_loss.set(xlabel="minutes", ylabel="train loss (per token)", title="training loss", yscale="log")
    minutes = [r["seconds"] / 60 for r in evals]
    ax_cer.plot(minutes, [r["eval_cer"] for r in evals], "o-", label="CER")
    ax_cer.plot(minutes, [r["eval_wer"] for r in evals], "s--", label="WER")
    if tesseract:
        ax_cer.axhline(tesseract["cer"], color="tab:red", linestyle=":", label=f"Tesseract CER {tesseract['cer']:.3f}")
    ax_cer.axhline(0.10, color="black", linewidth=0.5)
    ax_cer.set(xlabel="minutes", ylabel="error rate", title="held-out lines (other fonts, other text)",
               ylim=(0, max([1.05] + [1.05 * r["eval_cer"] for r in evals])))
    ax_cer.legend()
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=80)
    return out / "curve.png"


def plot_runs(runs: list[Path], png: Path) -> Path:
    """One figure, one curve per run (named by its folder): training loss and held-out CER against optimiser steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_cer) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
        train, evals = read_curve(run)
        line, = ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label=run.name)
        ax_cer.plot([r["step"] for r in evals], [r["eval_cer"] for r in evals], "o-", color=line.get_color(),
                    label=run.name)
    ax_loss.set(xlabel="optimiser step", ylabel="train loss (per token)", title="training loss", yscale="log")
    ax_cer.set(xlabel="optimiser step", ylabel="CER", title="held-out CER", ylim=(0, 1.2))
    ax_cer.axhline(0.30, color="black", linewidth=0.5)
    ax_cer.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    return png


def tesseract_scores(heldout: Path) -> dict:
    """Tesseract (hin, single-line mode) on the held-out folder, through the code behind infer.py --compare_tesseract."""
    from hindi_ocr import compare
    from hindi_ocr.inference import lines_from_data_dir
    from hindi_ocr.scoring import score
    from hindi_ocr.tesseract import locate

    lines = lines_from_data_dir(str(heldout))
    reading = compare.read_with_tesseract(locate(), lines)
    return score(reading.predictions, [line.reference for line in lines])


def print_summary(out: Path, heading: str, tesseract: dict | None) -> None:
    _, evals = read_curve(out)
    print(f"\n{machine()}\n{heading}\n")
    print("| minutes | step | held-out CER | WER | grapheme CER |\n|---|---|---|---|---|")
    for r in evals:
        print(f"| {r['seconds'] / 60:.1f} | {r['step']:.0f} | {r['eval_cer']:.4f} | {r['eval_wer']:.4f} | "
              f"{r['eval_grapheme_cer']:.4f} |")
    if tesseract:
        print(f"| Tesseract (hin, psm 7) | | {tesseract['cer']:.4f} | {tesseract['wer']:.4f} | "
              f"{tesseract['grapheme_cer']:.4f} |")


def main(argv=None):
    from hindi_ocr.inference import save_settings

    args = parse_args(argv)
    out = Path(args.out)
    if args.compare:
        print(f"wrote {plot_runs([Path(run) for run in args.compare], out)}")
        return
    if args.plot_only:  # redraw curve.png (e.g. adding --tesseract) from a finished run's curve.csv
        tesseract = tesseract_scores(out / "heldout") if args.tesseract else None
        print_summary(out, f"replotted {plot_curve(out, tesseract)}", tesseract)
        return
    torch.set_num_threads(args.threads)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("transformers").setLevel(logging.WARNING)
    out.mkdir(parents=True, exist_ok=True)
    trainer, heldout = build(args, out)
    tesseract = tesseract_scores(heldout) if args.tesseract else None
    budget = Budget(args.minutes * 60)
    trainer.add_callback(budget.callback)
    trainer.train()
    trainer.save_model(str(out / "model"))
    save_settings(str(out / "model"), args.line_layout)  # infer.py reads the layout from here
    write_curve(budget.rows, out)
    plot_curve(out, tesseract)
    size = sum(p.numel() for p in trainer.model.parameters()) / 1e6
    print_summary(out, f"layout {args.line_layout}, image {args.image_size}, {args.init or args.size} model ({size:.1f} M "
                       f"parameters), lr {args.learning_rate}, batch {args.batch_size}, {args.threads} thread(s)",
                  tesseract)
    print(f"\nwrote {out / 'curve.csv'}, {out / 'curve.png'}, {out / 'model'}, {heldout}")

if __name__ == "__main__":
    main()
