#!/usr/bin/env python
"""The repetition stop (hindi_ocr.generation): which (n, k) would stop real Hindi lines, and the time it saves.

    python bench/repetition_stop.py thresholds [--text_file ../shared/corpus/hi_commonvoice_sentences.txt]
    python bench/repetition_stop.py timing [--lines 8] [--max_new_tokens 256]

``thresholds``: every line of the text file, tokenized with the project's tokenizer (``hindi_ocr.tiny``'s
byte-level BPE) and as code points (GOT's Qwen BPE spends about one token per Devanagari code point), is checked
at every prefix the way the stop checks each generated step: for each n-gram size n and count k, the number of lines
with one n-gram written k times in a row somewhere; then the lines each candidate stop would end early.

``timing``: the untrained tiny model (it writes one token over and over, never the end token) reads a batch of
rendered lines with and without the stop; seconds and new tokens per batch, best of 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine, tiny_model  # noqa: E402

from hindi_ocr.generation import MAX_NGRAM, MIN_SPAN, REPEATS, copies_needed  # noqa: E402

TEXT = REPO.parent / "shared" / "corpus" / "hi_commonvoice_sentences.txt"
NGRAMS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
COUNTS = (2, 3, 4, 5, 6)


def max_repeats(ids: list, n: int) -> int:
    """Most copies in a row of one n-gram anywhere in ``ids`` (1 when nothing repeats)."""
    best = run = 0
    for i in range(n, len(ids)):
        run = run + 1 if ids[i] == ids[i - n] else 0
        best = max(best, run)
    return best // n + 1


RULES = ((24, 3, 0), (24, 4, 0), (24, 5, 0), (24, 3, 12), (24, 3, 16), (24, 4, 16), (24, 4, 24), (32, 4, 24))


def rule_trips(reps: list[dict], max_ngram: int, repeats: int, min_span: int) -> int:
    """Lines a stop (max_ngram, repeats, min_span) would end somewhere (hindi_ocr.generation.copies_needed)."""
    return sum(any(r[n] >= copies_needed(n, repeats, min_span) for n in range(1, max_ngram + 1)) for r in reps)


def thresholds(args) -> None:
    from hindi_ocr.tiny import build_tokenizer

    lines = [line.strip() for line in Path(args.text_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer = build_tokenizer()
    units = {"tokens (hindi_ocr.tiny tokenizer)": [tokenizer(line, add_special_tokens=False)["input_ids"]
                                                   for line in lines],
             "code points (~GOT's tokens)": [list(line) for line in lines]}
    tokens, points = (sum(map(len, seqs)) / len(lines) for seqs in units.values())
    print(f"{len(lines)} lines of {Path(args.text_file).name}: {tokens:.1f} tokens, {points:.1f} code points a line "
          "on average\n")
    reps = {name: [{n: max_repeats(s, n) for n in range(1, max(NGRAMS) + 1)} for s in seqs]
            for name, seqs in units.items()}
    names = list(units)
    print("Lines with one n-gram written k times in a row somewhere (tokens / code points):\n")
    print("| n | " + " | ".join(f"k={k}" for k in COUNTS) + " |\n" + "|---" * (len(COUNTS) + 1) + "|")
    for n in NGRAMS:
        cells = [" / ".join(str(sum(r[n] >= k for r in reps[name])) for name in names) for k in COUNTS]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\nStops: a loop is an n-gram (n <= max n) written max(k, ceil(min span / n)) times in a row.\n")
    print("| max n | k | min span | lines stopped (tokens) | lines stopped (code points) | tokens before a 1-gram / "
          "24-gram loop stops |\n|---|---|---|---|---|---|")
    for rule in RULES:
        chosen = " (chosen)" if rule == (MAX_NGRAM, REPEATS, MIN_SPAN) else ""
        latency = f"{copies_needed(1, *rule[1:])} / {24 * copies_needed(24, *rule[1:])}"
        print(f"| {rule[0]} | {rule[1]} | {rule[2]}{chosen} | " +
              " | ".join(str(rule_trips(reps[name], *rule)) for name in names) + f" | {latency} |")
    for name in names:
        tripped = [lines[i] for i, r in enumerate(reps[name])
                   if any(r[n] >= copies_needed(n, REPEATS, 0) for n in range(1, MAX_NGRAM + 1))]
        print(f"\n{name}: lines with {REPEATS} copies in a row of some n-gram, e.g. " + "; ".join(tripped[:3]))


def timing(args) -> None:
    import torch

    from hindi_ocr import generation
    from hindi_ocr.examples import OcrExampleBuilder
    from hindi_ocr.generation import configure_generation
    from hindi_ocr.render import devanagari_fonts, render_line
    from hindi_ocr.tiny import load_tiny

    torch.set_num_threads(1)
    model, processor = load_tiny(tiny_model(args.image_size))
    configure_generation(model, processor, max_new_tokens=args.max_new_tokens)
    model.eval()
    face = devanagari_fonts("Hind-Regular")[0]
    images = [render_line(f"पंक्ति {i} भारत एक देश है", face, size=32) for i in range(args.lines)]
    builder = OcrExampleBuilder(processor)
    inputs = builder.prompt_inputs(images)
    results = []
    for stop in (False, True):
        best, out = float("inf"), None
        for _ in range(3):
            start = time.perf_counter()
            out = generation.generate_lines(model, dict(inputs), processor.tokenizer, stop=stop)
            best = min(best, time.perf_counter() - start)
        tokens = [len(processor.tokenizer(g.text, add_special_tokens=False)["input_ids"]) for g in out]
        results.append((stop, best, max(tokens), sum(g.repetition for g in out)))
    print(f"{args.lines} rendered lines, one batch, untrained tiny model at {args.image_size}px, "
          f"max_new_tokens {args.max_new_tokens}; {machine()}\n")
    print("| repetition stop | seconds (best of 3) | new tokens (longest line) | lines flagged |\n|---|---|---|---|")
    for stop, seconds, tokens, flagged in results:
        print(f"| {'on' if stop else 'off'} | {seconds:.2f} | {tokens} | {flagged}/{args.lines} |")
    print(f"\ntime saved: {100 * (1 - results[1][1] / results[0][1]):.0f}%")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("thresholds")
    t.add_argument("--text_file", default=str(TEXT))
    g = sub.add_parser("timing")
    g.add_argument("--lines", type=int, default=8)
    g.add_argument("--max_new_tokens", type=int, default=256)
    g.add_argument("--image_size", type=int, default=256)
    args = p.parse_args(argv)
    thresholds(args) if args.command == "thresholds" else timing(args)


if __name__ == "__main__":
    main()
