#!/usr/bin/env python
"""Our GOT-OCR2 model vs Tesseract (``-l hin --psm 7``) on the same held-out lines: CER, WER, grapheme_CER, lines/s,
and the same per font. Prints Markdown tables (they paste into BENCHMARKS.md).

    python bench/vs_tesseract.py --model_name_or_path BASE --adapter ADAPTER            # 100 rendered lines
    python bench/vs_tesseract.py --adapter ADAPTER --data_dir DIR/TestSamples --report_dir reports/
    python bench/vs_tesseract.py --model_name_or_path "$(python -m hindi_ocr.tiny /tmp/tiny >/dev/null; echo /tmp/tiny)"

Without ``--data_dir`` it renders ``--n`` lines of ``--text_file`` (default: Common Voice sentences, CC0, in
../shared/corpus/hi_commonvoice_sentences.txt beside the repository when it is there, else lines the dataset
builder makes from wordfreq's Hindi words) with ``hindi_ocr.render.write_line_folder``:
clean lines, line i in face i mod len(--fonts), into one seed-layout folder (data.csv +
FACE/output_images/NNNNN__FACE.png, so ``font_of`` knows each line's face) under $HINDI_OCR_BENCH_DIR, reused on
the next run. The lines are the first N of ``generate_lines(None, --seed, text_file)``: the test split of the
synthetic dataset config with ``test_lines=N`` and the same seed, i.e. held out from a model trained on that file
with ``test_lines >= N``.

Reading goes through ``hindi_ocr.compare``, the code behind ``infer.py --compare_tesseract``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_DIR, REPO, machine  # noqa: E402  (also puts the repository on sys.path)

from hindi_ocr import compare  # noqa: E402
from hindi_ocr.inference import lines_from_data_dir  # noqa: E402
from hindi_ocr.render import devanagari_fonts, generate_lines, write_line_folder  # noqa: E402
from hindi_ocr.tesseract import locate  # noqa: E402

SHARED_TEXT = REPO.parent / "shared" / "corpus" / "hi_commonvoice_sentences.txt"
DEFAULT_TEXT = str(SHARED_TEXT) if SHARED_TEXT.is_file() else None  # a plain clone has no ../shared
DEFAULT_FONTS = ("Hind-Regular,NotoSansDevanagari-Regular,Mukta-Regular,Kalam-Regular,Baloo2-Regular,"
                 "Poppins-Regular,Rajdhani-Regular,Teko-Regular")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name_or_path", help="base GOT-OCR2 (default: the adapter's base)")
    p.add_argument("--adapter", help="LoRA adapter folder or Hub id")
    p.add_argument("--data_dir", help="a seed-layout folder to read instead of rendering lines")
    p.add_argument("--n", type=int, default=100, help="lines to render")
    p.add_argument("--text_file", default=DEFAULT_TEXT,
                   help="where the rendered lines come from (default: ../shared's Common Voice sentences when present, "
                        "else wordfreq's Hindi words)")
    p.add_argument("--fonts", default=DEFAULT_FONTS, help="comma-separated faces or families, used in turn")
    p.add_argument("--size", type=int, default=32, help="font size in pixels")
    p.add_argument("--seed", type=int, default=0, help="line shuffle seed (the synthetic config's seed)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_new_tokens", type=int, default=256)
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--tesseract_cmd", help="the tesseract binary (default: $TESSERACT_CMD, else tesseract on PATH)")
    p.add_argument("--report_dir", help="write an error report per engine: DIR/got-ocr2.md, DIR/tesseract.md (+ .png)")
    return p.parse_args(argv)


def rendered_folder(text_file: str, n: int, fonts: str, size: int, seed: int) -> Path:
    """The held-out lines rendered once per (text file, n, fonts, size, seed); one data.csv over every face."""
    faces = devanagari_fonts(fonts)
    key = hashlib.sha1(f"{Path(text_file).resolve() if text_file else 'wordfreq'}|{n}|{[f.name for f in faces]}|{size}|{seed}".encode())
    out = BENCH_DIR / f"vs-tesseract-{n}-{key.hexdigest()[:10]}"
    if (out / "data.csv").is_file():
        return out
    lines = generate_lines(n, seed=seed, text_file=text_file)
    names = []
    for j, face in enumerate(faces):
        image_name = "{:05d}__" + face.name + ".png"
        write_line_folder(out / face.name, lines[j::len(faces)], font=face.name, size=size, image_name=image_name)
        names.append([f"{face.name}/output_images/{image_name.format(k)}" for k in range(len(lines[j::len(faces)]))])
    with open(out / "data.csv.tmp", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_file", "text"])
        writer.writerows([names[i % len(faces)][i // len(faces)], text] for i, text in enumerate(lines))
    (out / "data.csv.tmp").rename(out / "data.csv")  # last: a half-written folder is never reused
    return out


def main(argv=None):
    args = parse_args(argv)
    if not (args.model_name_or_path or args.adapter):
        sys.exit("give --model_name_or_path and/or --adapter")
    tesseract = locate(args.tesseract_cmd)
    data_dir = args.data_dir or rendered_folder(args.text_file, args.n, args.fonts, args.size, args.seed)
    lines = lines_from_data_dir(str(data_dir))
    reader = compare.load_reader(args.model_name_or_path, args.adapter, dtype=args.dtype,
                                 max_new_tokens=args.max_new_tokens)
    readings = [compare.read_with_model(reader, lines, args.batch_size), compare.read_with_tesseract(tesseract, lines)]
    print(f"# GOT-OCR2 vs Tesseract\n\n{machine()}; lines: {data_dir}\n")
    print(compare.summary_table(readings, lines), "", compare.SPEED_NOTE, sep="\n")
    by_font = compare.font_table(readings, lines)
    if by_font:
        print("\n## Per font\n", by_font, sep="\n")
    if args.report_dir:
        paths = [Path(args.report_dir) / f"{r.slug}.md" for r in readings]
        for path in compare.write_reports(readings, lines, paths):
            print(f"report written to {path}")


if __name__ == "__main__":
    main()
