#!/usr/bin/env python
"""Read Hindi text lines with GOT-OCR2 and a trained LoRA adapter, from a local folder or the Hub.

    python infer.py --adapter USER/NAME line1.png line2.png
    python infer.py --model_name_or_path BASE --adapter outputs/run --data_dir TestSamples --output preds.jsonl
    python infer.py --adapter outputs/run --merge_lora merged/      # standalone checkpoint, no peft needed
    python infer.py --adapter USER/NAME --merge_lora merged/ --push_to_hub USER/NAME-merged
    python infer.py --adapter outputs/run --data_dir TestSamples --compare_tesseract --report report.md
"""

import argparse
import logging
import sys
from pathlib import Path

from hindi_ocr import compare
from hindi_ocr.arguments import DEFAULT_MODEL
from hindi_ocr.checks import positive_int
from hindi_ocr.examples import LINE_LAYOUTS
from hindi_ocr.hub import publish_merged
from hindi_ocr.inference import lines_from_data_dir, lines_from_paths, save_settings, write_predictions
from hindi_ocr.scoring import score
from hindi_ocr.tesseract import locate


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="line images or folders of them")
    p.add_argument("--data_dir", help="seed-layout folder (data.csv + images): references give CER/WER")
    p.add_argument("--model_name_or_path", help=f"base GOT-OCR2 (default: the adapter's base, else {DEFAULT_MODEL})")
    p.add_argument("--model_revision", default=None, help="branch, tag or commit of the base")
    p.add_argument("--adapter", help="LoRA adapter: a folder written by train.py or a Hub id")
    p.add_argument("--adapter_revision", default=None, help="branch, tag or commit of the adapter on the Hub")
    p.add_argument("--line_layout", choices=LINE_LAYOUTS, help="default: what the adapter was trained with")
    p.add_argument("--max_samples", type=positive_int, default=None,
                   help="read only the first N lines (of --data_dir's data.csv, then the images given)")
    p.add_argument("--lines_per_page", type=positive_int,
                   help="lines read together on one page (default: what the model was trained with, from "
                        "hindi_ocr.json; 1 reads each line alone, on a page at the training scale if it was "
                        "trained on pages)")
    p.add_argument("--batch_size", type=positive_int, default=8, help="images per generation (lines, or pages)")
    p.add_argument("--max_new_tokens", type=positive_int, default=256, help="per line (a page: N times this)")
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--output", help="write predictions to FILE.jsonl or FILE.csv")
    p.add_argument("--merge_lora", metavar="DIR", help="merge the adapter into the base and save it to DIR")
    p.add_argument("--push_to_hub", metavar="REPO_ID", help="with --merge_lora: upload the merged model and a card")
    p.add_argument("--hub_private_repo", action="store_true", help="create the --push_to_hub repo private")
    p.add_argument("--hub_token", default=None, help="token for private repos (default: the logged-in token)")
    p.add_argument("--allow_pickle_adapter", action="store_true",
                   help="load an adapter that has only adapter_model.bin (a pickle: only from a source you trust)")
    p.add_argument("--compare_tesseract", "--compare-tesseract", action="store_true",
                   help="also read the lines with Tesseract (-l hin --psm 7); with references: both engines' scores")
    p.add_argument("--tesseract_cmd", help="the tesseract binary (default: $TESSERACT_CMD, else tesseract on PATH)")
    p.add_argument("--report", metavar="FILE.md", help="error analysis (Markdown + FILE.png chart); needs --data_dir. "
                   "With --compare_tesseract Tesseract's goes to FILE-tesseract.md")
    args = p.parse_args(argv)
    if not (args.images or args.data_dir or args.merge_lora):
        p.error("give line images/folders, --data_dir, or --merge_lora")
    if args.merge_lora and not args.adapter:
        p.error("--merge_lora needs --adapter")
    if args.push_to_hub and not args.merge_lora:
        p.error("--push_to_hub uploads the --merge_lora folder: give --merge_lora DIR")
    if args.report and not args.data_dir:
        p.error("--report needs references: give --data_dir (a folder with data.csv)")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    lines = lines_from_data_dir(args.data_dir) if args.data_dir else []
    lines += lines_from_paths(args.images)  # bad images and rows fail here, before any model loads
    lines = lines[:args.max_samples]
    tesseract = locate(args.tesseract_cmd) if args.compare_tesseract and lines else None  # so does a missing one
    reader = compare.load_reader(args.model_name_or_path, args.adapter, revision=args.model_revision,
                                 adapter_revision=args.adapter_revision, token=args.hub_token, dtype=args.dtype,
                                 merge=bool(args.merge_lora), allow_pickle_adapter=args.allow_pickle_adapter,
                                 max_new_tokens=args.max_new_tokens, line_layout=args.line_layout)
    model, processor, base, line_layout = reader.model, reader.processor, reader.base, reader.line_layout
    if args.merge_lora:
        model.save_pretrained(args.merge_lora)
        processor.save_pretrained(args.merge_lora)
        save_settings(args.merge_lora, line_layout, reader.lines_per_page)
        print(f"merged model written to {args.merge_lora}")
        if args.push_to_hub:
            publish_merged(args.merge_lora, args.push_to_hub, base, args.adapter, args.adapter_revision,
                           token=args.hub_token, private=args.hub_private_repo, line_layout=line_layout,
                           max_new_tokens=args.max_new_tokens, num_image_tokens=processor.num_image_tokens,
                           lines_per_page=reader.lines_per_page)
            print(f"merged model pushed to {args.push_to_hub}")

    if not lines:
        return
    # Tesseract first (timed on its own) so that each printed line can show both readings side by side.
    readings = [compare.read_with_tesseract(tesseract, lines)] if tesseract else []
    records = []

    def show(i, prediction):
        line, record = lines[i], {"image": lines[i].image, "prediction": prediction}
        if line.reference is not None:
            record["reference"] = line.reference
        if tesseract:
            record["tesseract"] = readings[0].predictions[i]
        records.append(record)
        print("\t".join([line.image, prediction] + ([record["tesseract"]] if tesseract else [])), flush=True)

    stats = {}
    readings.insert(0, compare.read_with_model(reader, lines, args.batch_size, on_line=show,
                                               lines_per_page=args.lines_per_page, stats=stats))
    if stats.get("pages"):
        print(f"{len(lines)} lines read in {stats['pages']} pages; {stats['page_rereads']} pages read again one "
              "line per page (their output had another number of lines)", file=sys.stderr)
    if args.output:
        write_predictions(args.output, records)
    if tesseract and any(line.reference is not None for line in lines):
        print(compare.summary_table(readings, lines))
        print(compare.SPEED_NOTE)
    if args.report:
        report = Path(args.report)
        paths = [report] + [report.with_name(f"{report.stem}-{r.slug}{report.suffix or '.md'}") for r in readings[1:]]
        for path in compare.write_reports(readings, lines, paths):
            print(f"report written to {path}")
    scored = [r for r in records if "reference" in r]
    if scored:
        m = score([r["prediction"] for r in scored], [r["reference"] for r in scored])
        print(f"CER {m['cer']:.4f} WER {m['wer']:.4f} grapheme_CER {m['grapheme_cer']:.4f} (n={len(scored)})")


if __name__ == "__main__":
    main()
