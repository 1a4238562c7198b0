#!/usr/bin/env python
"""Reading speed, pages against batched single lines: the tiny GOT-OCR2 + LoRA r8 at 1024x1024 (GOT's input).

    python bench/page_reading.py                          # 32 lines, pages of 8 vs one line per image, batch 8
    python bench/page_reading.py --lines 64 --lines_per_page 4 8 --rounds 2

* lines: ``hindi_ocr.inference.read_lines`` as infer.py runs it, ``--batch_size`` line images per generation;
* pages of N: the same lines typeset N to a page (``hindi_ocr.pages.PageLayout``), ``--batch_size`` pages per
  generation, timed from the line files (composition included).
Every line costs the same number of new tokens in both (``--new_tokens`` per line: min = max new tokens, a page
N times that), since a random model stops whenever it happens to write ``<|im_end|>``. A random model does not write
a page's newlines either, so the page rows time the pages' generation alone: the line-count check and the re-read a
trained model would rarely need are left out (a re-read costs one more pass per line of that page).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--lines", type=int, default=32)
    p.add_argument("--lines_per_page", type=int, nargs="+", default=[8])
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--new_tokens", type=int, default=32, help="new tokens per line")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch
    import transformers

    from hindi_ocr.examples import OcrExampleBuilder
    from hindi_ocr.inference import open_line, lines_from_data_dir, read_images, read_lines
    from hindi_ocr.modeling import attach_lora, check_got_ocr2, configure_generation, load_base_model, load_processor
    from hindi_ocr.pages import PageLayout

    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    lines = lines_from_data_dir(str(c.line_folder(args.lines, seed=2)))
    path = str(c.tiny_model(args.size))
    processor = load_processor(path, check_got_ocr2(path))
    torch.manual_seed(0)
    model = attach_lora(load_base_model(path, check_got_ocr2(path), processor, dtype="float32"), r=8, alpha=32,
                        dropout=0.05).eval()
    configure_generation(model, processor, max_new_tokens=args.new_tokens)

    def read_single():
        model.generation_config.min_new_tokens = model.generation_config.max_new_tokens = args.new_tokens
        return list(read_lines(model, OcrExampleBuilder(processor), lines, args.batch_size, repetition_stop=False))

    def read_pages(n):
        builder = OcrExampleBuilder(processor, pages=PageLayout(args.size, n))
        tokens = args.new_tokens * n
        model.generation_config.min_new_tokens = model.generation_config.max_new_tokens = tokens
        out = []
        for start in range(0, len(lines), n * args.batch_size):
            batch = lines[start : start + n * args.batch_size]
            pages = [builder.pages.compose([open_line(line) for line in batch[i : i + n]]) for i in range(0, len(batch), n)]
            out += read_images(model, builder, pages, max_new_tokens=tokens, stop=False)  # fixed token count
        return out

    modes = {"lines": read_single} | {f"pages of {n}": (lambda n: lambda: read_pages(n))(n)
                                     for n in args.lines_per_page}
    times = {name: [] for name in modes}
    for round_ in range(args.rounds):
        for name, fn in modes.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            print(f"[bench] round {round_} {name}: {times[name][-1]:.1f} s", file=sys.stderr, flush=True)
    base = len(lines) / c.median(times["lines"])
    rows = []
    for name, values in times.items():
        lps = len(lines) / c.median(values)
        images = len(lines) if name == "lines" else -(-len(lines) // int(name.split()[-1]))
        rows.append([name, images, f"{c.median(values):.1f}", f"{lps:.2f}", f"{lps / base:.1f}x"])
    print(f"# reading speed: tiny GOT-OCR2 + LoRA r8 at {args.size}x{args.size}, {len(lines)} lines, "
          f"{args.new_tokens} new tokens per line, batch {args.batch_size} images; median of {args.rounds} round(s)")
    print(f"# {c.machine()}; torch threads: {args.threads}")
    print(c.table(["read as", "images", "seconds", "lines/s", "vs lines"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
