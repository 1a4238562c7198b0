#!/usr/bin/env python
"""Reading a large seed-layout folder: the non-streaming build vs streaming (80,000 rows by default).

    python bench/dataset_build.py                       # 80,000 rows in $HINDI_OCR_BENCH_DIR/build-80000, 3 repeats
    python bench/dataset_build.py --rows 10000 --repeats 1 --out /tmp/lines10k

The folder (made once, then reused): ``data.csv`` + ``output_images/NNNNNN.png``, every row its own file name and
its own text. Only ``--pool`` distinct lines are rendered (hindi_ocr.render, Hind 32 px); the 80k image files are
hard links to them (``--copy``: real copies), and each row's text is its pool line plus the row number in
Devanagari digits, so texts are distinct but an image shows its pool line without the number. Right for timing the
reading, not for training. Hard links share one inode per pool image, so the image checks read from a few hundred
cached files; ``--copy`` gives every row its own inode.

Each measurement runs in its own process, after importing torch as train.py has (datasets' IterableDataset imports
it on first use; timing that would add ~1.5 s to the stream). Imports are not timed; RSS: the process's peak, and
that peak minus the RSS after the imports (what reading the data added):

* build: ``HindiLineOCR(config csv).download_and_prepare()`` into an empty cache, ``check_images`` verify (the
  default: PNG CRCs, about 0.2 ms a file) and none (paths looked up, files not opened);
* stream, first row / first 1000 rows: ``as_streaming_dataset()`` then the train split, images decoded (the index
  pass over the CSV comes before the first row);
* stream, full pass: every row of every split, images decoded as training reads them; and rows only (no image
  decoded; each yielded row's image still looked up and checked).

The table gives the median over ``--repeats`` and the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

DIGITS = str.maketrans("0123456789", "०१२३४५६७८९")
MODES = ("build_verify", "build_none", "stream_first", "stream_pass", "stream_rows")


def make_folder(out: Path, rows: int, pool: int, copy: bool) -> Path:
    """The seed layout with ``rows`` rows over ``pool`` rendered lines (see the module docstring)."""
    if (out / "data.csv").is_file() and sum(1 for _ in open(out / "data.csv", encoding="utf-8")) == rows + 1:
        return out
    from hindi_ocr.render import generate_lines, write_line_folder

    shutil.rmtree(out, ignore_errors=True)
    texts = list(dict.fromkeys(generate_lines(pool * 2, seed=11)))[:pool]
    write_line_folder(out / "pool", texts, size=32)
    images = out / "output_images"
    images.mkdir()
    link = shutil.copyfile if copy else os.link
    with open(out / "data.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_file", "text"])
        for i in range(rows):
            name = f"{i:06d}.png"
            link(out / "pool" / "output_images" / f"{i % len(texts)}.png", images / name)
            writer.writerow([name, f"{texts[i % len(texts)]} {str(i).translate(DIGITS)}"])
    return out


def child(mode: str, folder: str) -> dict:
    """One measurement in this process: seconds, rows, peak RSS."""
    import psutil
    import torch  # noqa: F401  (see the module docstring)

    from hindi_ocr.data import builder_class

    HindiLineOCR = builder_class()

    result = {"mode": mode, "import_rss": psutil.Process().memory_info().rss}
    start = time.perf_counter()
    if mode.startswith("build"):
        with tempfile.TemporaryDirectory(dir=c.BENCH_DIR) as cache:
            builder = HindiLineOCR(config_name="csv", data_dir=folder, cache_dir=cache,
                                   check_images=mode.removeprefix("build_"))
            builder.download_and_prepare()
            result["seconds"] = time.perf_counter() - start
            result["rows"] = sum(split.num_examples for split in builder.info.splits.values())
    else:
        splits = HindiLineOCR(config_name="csv", data_dir=folder).as_streaming_dataset()
        if mode == "stream_first":
            for n, _ in enumerate(splits["train"], start=1):
                if n == 1:
                    result["first_row_s"] = time.perf_counter() - start
                if n == 1000:
                    break
            result["seconds"], result["rows"] = time.perf_counter() - start, n
        else:
            n = 0
            for split in splits.values():
                rows = split if mode == "stream_pass" else split.select_columns(["image_file", "text"])
                for n, _ in enumerate(rows, start=n + 1):
                    pass
            result["seconds"], result["rows"] = time.perf_counter() - start, n
    result["peak_rss"] = c.self_peak_rss()
    return result


def run(mode: str, folder: Path) -> dict:
    measured = c.run_measured([sys.executable, __file__, "--child", mode, "--out", str(folder)],
                              env={"OMP_NUM_THREADS": "1"})
    parsed = c.last_json_line(measured["output"])
    if parsed is None:
        raise SystemExit(f"{mode} failed ({measured['returncode']}):\n{measured['output'][-3000:]}")
    print(f"[bench] {mode}: {parsed['seconds']:.1f} s, {parsed['rows']} rows, {c.mib(parsed['peak_rss'])} MiB",
          file=sys.stderr, flush=True)
    return parsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=80_000)
    p.add_argument("--pool", type=int, default=300, help="distinct rendered lines behind the rows")
    p.add_argument("--out", type=Path, help="the folder (default: $HINDI_OCR_BENCH_DIR/build-ROWS)")
    p.add_argument("--copy", action="store_true", help="copy the pool images instead of hard-linking them")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        c.emit(child(args.child, str(args.out)))
        return 0

    c.BENCH_DIR.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    folder = make_folder(args.out or c.BENCH_DIR / f"build-{args.rows}", args.rows, args.pool, args.copy)
    print(f"[bench] folder {folder} ready in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    results = {mode: [] for mode in args.modes}
    for _ in range(args.repeats):  # modes alternate within each repeat
        for mode in args.modes:
            results[mode].append(run(mode, folder))
    load_after = os.getloadavg()

    labels = {"build_verify": "build (download_and_prepare), check_images=verify",
              "build_none": "build (download_and_prepare), check_images=none",
              "stream_first": "stream: first 1000 train rows, images decoded",
              "stream_pass": "stream: full pass, all splits, images decoded",
              "stream_rows": "stream: full pass, all splits, rows only (no decode)"}
    table = []
    for mode, runs in results.items():
        seconds = c.median([r["seconds"] for r in runs])
        rows = runs[0]["rows"]
        first = c.median([r.get("first_row_s") for r in runs]) if mode == "stream_first" else None
        table.append([labels[mode], f"{rows:,}", f"{seconds:.2f}", f"{rows / seconds:,.0f}",
                      "-" if first is None else f"{first:.2f}", c.mib(max(r["peak_rss"] for r in runs)),
                      c.mib(max(r["peak_rss"] - r["import_rss"] for r in runs))])
    print(f"# {args.rows:,} rows ({'copied' if args.copy else 'hard-linked'} images, {args.pool} distinct), "
          f"median of {args.repeats}; {c.machine()}")
    print(f"# load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, after: "
          f"{' '.join(f'{x:.2f}' for x in load_after)}")
    print(c.table(["what", "rows", "seconds", "rows/s", "first row s", "peak RSS MiB", "added by reading MiB"],
                  table))
    print(json.dumps({mode: [round(r["seconds"], 3) for r in runs] for mode, runs in results.items()}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
