#!/usr/bin/env python
"""Share of training pages that hold fewer than N lines (``hindi_ocr.pages.page_sizes``), by corpus size and N.

    python bench/short_pages.py            # N = 2, 4, 8; 100 to 80,000 lines; 5 seeds each (a few minutes)

Training pages are ceil(L / N) + ceil(L / 8N) for L lines; the spare room is taken from random pages. The table
gives the lowest and highest share over the seeds.
"""

from __future__ import annotations

import argparse
import random

from hindi_ocr.pages import page_sizes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, nargs="+", default=[100, 1000, 10_000, 80_000])
    p.add_argument("--per_page", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args(argv)
    print("| N | " + " | ".join(f"{n:,} lines" for n in args.lines) + " |")
    print("| --- |" + " --- |" * len(args.lines))
    for per_page in args.per_page:
        cells = []
        for lines in args.lines:
            shares = []
            for seed in range(args.seeds):
                sizes = page_sizes(lines, per_page, random.Random(seed))
                shares.append(sum(size < per_page for size in sizes) / len(sizes))
            cells.append(f"{min(shares):.2f}–{max(shares):.2f}")
        print(f"| {per_page} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
