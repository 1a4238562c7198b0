#!/usr/bin/env python
"""Read Hindi text lines with GOT-OCR2 and a trained LoRA adapter, from a local folder or the Hub.

    python infer.py --adapter USER/NAME line1.png line2.png
    python infer.py --model_name_or_path BASE --adapter outputs/run --data_dir TestSamples --output preds.jsonl
    python infer.py --adapter outputs/run --merge_lora merged/      # standalone checkpoint, no peft needed
    python infer.py --adapter USER/NAME --merge_lora merged/ --push_to_hub USER/NAME-merged
    python infer.py --adapter outputs/run --data_dir TestSamples --compare_tesseract --report report.md
    torchrun --nproc_per_node 8 infer.py --adapter USER/NAME --dataset_name USER/lines --output preds.parquet --resume
    python infer.py --adapter outputs/run scans/ --output preds.jsonl --review to_check/ --review_below 0.8
"""

import argparse
import itertools
import logging
import sys
from pathlib import Path

from hindi_ocr import compare
from hindi_ocr.arguments import DEFAULT_MODEL
from hindi_ocr.checks import positive_int, unit_interval
from hindi_ocr.examples import LINE_LAYOUTS
from hindi_ocr.hub import publish_merged
from hindi_ocr.distributed_reading import end_processes, launched, read_in_order, skip_done, start_processes
from hindi_ocr.inference import Line, lines_from_data_dir, lines_from_paths, save_settings
from hindi_ocr.pages import reading_scale
from hindi_ocr.prediction_files import PredictionFile, check_output
from hindi_ocr.review import check_review_dir, is_repetition, write_review
from hindi_ocr.scoring import failure_scores, score
from hindi_ocr.tesseract import locate


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="line images or folders of them")
    p.add_argument("--data_dir", help="seed-layout folder (data.csv + images): references give CER/WER")
    p.add_argument("--dataset_name", help="read a dataset instead: a Hub id or anything datasets.load_dataset takes "
                   "(an `image` column; `text` is the reference), as train.py takes it")
    p.add_argument("--dataset_config", "--dataset_config_name", default=None, help="--dataset_name's config")
    p.add_argument("--split", default="test", help="--dataset_name's split to read (default: test)")
    p.add_argument("--streaming", action="store_true",
                   help="--dataset_name: stream the rows instead of downloading the dataset first")
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
    p.add_argument("--max_new_tokens", type=positive_int, default=256, help="per line (a page of N lines: N x (this + 1))")
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--output", help="write predictions to FILE.jsonl, FILE.csv or FILE.parquet (one record per line: "
                   "image, prediction, reference when known, and the other per-line fields)")
    p.add_argument("--resume", action="store_true",
                   help="--output already holds the first lines of this input (a stopped job): keep them, read the rest")
    p.add_argument("--flush_seconds", type=float, default=10.0,
                   help="extend --output at most this often while reading (and at the end)")
    p.add_argument("--push_predictions", metavar="REPO_ID",
                   help="put the predictions on the Hub as a dataset (parquet + a card naming the model and its scores)")
    p.add_argument("--merge_lora", metavar="DIR", help="merge the adapter into the base and save it to DIR")
    p.add_argument("--push_to_hub", metavar="REPO_ID", help="with --merge_lora: upload the merged model and a card")
    p.add_argument("--hub_private_repo", action="store_true",
                   help="create the --push_to_hub / --push_predictions repo private")
    p.add_argument("--hub_token", default=None, help="token for private repos (default: the logged-in token)")
    p.add_argument("--allow_pickle_adapter", action="store_true",
                   help="load an adapter that has only adapter_model.bin (a pickle: only from a source you trust)")
    p.add_argument("--compare_tesseract", "--compare-tesseract", action="store_true",
                   help="also read the lines with Tesseract (-l hin --psm 7); with references: both engines' scores")
    p.add_argument("--tesseract_cmd", help="the tesseract binary (default: $TESSERACT_CMD, else tesseract on PATH)")
    p.add_argument("--report", metavar="FILE.md", help="error analysis (Markdown + FILE.png chart); needs --data_dir. "
                   "With --compare_tesseract Tesseract's goes to FILE-tesseract.md")
    p.add_argument("--review", metavar="DIR", help="write the doubtful lines (below --review_below, the --review_worst "
                   "least confident, and lines ended by the repetition stop) to DIR as data.csv + images, the model's "
                   "reading prefilled, for a person to correct and `train.py --data_dir DIR` to train on")
    p.add_argument("--review_below", type=unit_interval, metavar="X", help="with --review: lines with confidence < X")
    p.add_argument("--review_worst", type=positive_int, metavar="N", help="with --review: the N least confident lines")
    p.add_argument("--overwrite_review", action="store_true", help="write into a --review folder that holds files")
    args = p.parse_args(argv)
    if args.review and args.review_below is None and args.review_worst is None:
        p.error("--review DIR needs --review_below X (a confidence, 0-1) or --review_worst N")
    if (args.review_below is not None or args.review_worst) and not args.review:
        p.error("--review_below / --review_worst choose lines for --review DIR: give --review DIR")
    if args.review and args.dataset_name:
        p.error("--review copies image files: give the images, folders or --data_dir (not --dataset_name)")
    if not (args.images or args.data_dir or args.dataset_name or args.merge_lora):
        p.error("give line images/folders, --data_dir, --dataset_name, or --merge_lora")
    if args.dataset_name and (args.data_dir or args.images):
        p.error("--dataset_name reads a dataset; --data_dir and image arguments read files: give one of them")
    if args.streaming and not args.dataset_name:
        p.error("--streaming streams a --dataset_name; files and folders are read as they come anyway")
    if args.output:
        check_output(args.output)
    if args.resume and not args.output:
        p.error("--resume continues the --output file of a stopped job: give --output")
    if args.compare_tesseract and (args.resume or launched()):
        p.error("--compare_tesseract times both engines in one process over all lines: run it without --resume, "
                "and without torchrun / accelerate launch")
    if args.merge_lora and not args.adapter:
        p.error("--merge_lora needs --adapter")
    if args.push_to_hub and not args.merge_lora:
        p.error("--push_to_hub uploads the --merge_lora folder: give --merge_lora DIR")
    if args.report and not args.data_dir:
        p.error("--report needs references: give --data_dir (a folder with data.csv)")
    return args


def input_lines(args):
    """(lines, total): a list from files, folders and --data_dir, or a lazy sequence of a dataset's rows."""
    if args.dataset_name:
        from hindi_ocr.line_sources import dataset_lines, load_split, num_lines

        data = load_split(args.dataset_name, args.dataset_config, args.split, args.streaming)
        total = num_lines(data)
        lines = dataset_lines(data, args.split)
        if args.max_samples:
            lines, total = itertools.islice(lines, args.max_samples), min(total or args.max_samples, args.max_samples)
        return lines, total
    lines = lines_from_data_dir(args.data_dir) if args.data_dir else []
    lines += lines_from_paths(args.images)  # bad images and rows fail here, before any model loads
    lines = lines[:args.max_samples]
    return lines, len(lines)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    state = start_processes()  # torchrun / accelerate launch: one share of the lines per process
    try:
        run(args, state)
    finally:
        end_processes(state)


def run(args, state):
    main_process = state.is_main_process
    lines, total = input_lines(args)
    if args.review:
        check_review_dir(args.review, args.overwrite_review)  # a folder that may hold corrections: before the model
    tesseract = locate(args.tesseract_cmd) if args.compare_tesseract and total != 0 else None  # so does a missing one
    reader = compare.load_reader(args.model_name_or_path, args.adapter, revision=args.model_revision,
                                 adapter_revision=args.adapter_revision, token=args.hub_token, dtype=args.dtype,
                                 merge=bool(args.merge_lora), allow_pickle_adapter=args.allow_pickle_adapter,
                                 max_new_tokens=args.max_new_tokens, line_layout=args.line_layout)
    model, processor, base, line_layout = reader.model, reader.processor, reader.base, reader.line_layout
    if args.merge_lora and main_process:
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
    if total == 0:
        return

    per_page = reading_scale(reader.lines_per_page, args.lines_per_page)[0]
    per_share = args.batch_size * per_page  # one batch of one process: batches start on the same line for any N
    out = PredictionFile(args.output) if args.output and main_process else None
    done = []  # records already in --output (--resume)
    if out is not None:
        done = out.resume() if args.resume else out.start() or []
    lines, done = skip_done(state, lines, done, per_share, out)
    if args.resume and main_process:
        print(f"--resume: {len(done)} lines already in {args.output} skipped", file=sys.stderr)

    def record(line, generated, tesseract_reading=None):
        item = {"image": line.image, "prediction": generated.text, **generated.fields()}  # confidence, repetition
        if line.reference is not None:
            item["reference"] = line.reference
        if tesseract_reading is not None:
            item["tesseract"] = tesseract_reading
        return item

    def read_share(share):
        # Tesseract first (timed on its own) so that each printed line can show both readings side by side.
        other = compare.read_with_tesseract(tesseract, share) if tesseract else None
        stats = {}
        reading = compare.read_with_model(reader, share, args.batch_size, lines_per_page=args.lines_per_page,
                                          stats=stats)
        records = [record(line, generated, other and other.predictions[i])
                   for i, (line, generated) in enumerate(zip(share, reading.generated))]
        return records, {**stats, "model_seconds": reading.seconds, "tesseract_seconds": other.seconds if other else 0.0}

    records = list(done)

    def show(new):
        records.extend(new)
        for item in new:
            print("\t".join([item["image"], item["prediction"]] + ([item["tesseract"]] if tesseract else [])),
                  flush=True)

    counts = read_in_order(state, lines, read_share, lines_per_share=per_share, on_records=show,
                           flush=out.append if out else lambda _: None, first_index=len(done), total=total,
                           flush_seconds=args.flush_seconds)
    if not main_process:
        return
    if out is not None:
        out.close()
    if counts.get("pages"):
        print(f"{counts['lines']} lines read in {counts['pages']} pages; {counts['page_rereads']} pages read again "
              "one line per page (their output had another number of lines)", file=sys.stderr)
    print(f"{counts['lines']} lines read in {counts['seconds']:.1f} s ({counts['lines'] / max(counts['seconds'], 1e-9):.2f} "
          f"lines/s) by {state.num_processes} process{'es' if state.num_processes > 1 else ''}", file=sys.stderr)
    readings = [compare.Reading(reader.engine, "got-ocr2", [r["prediction"] for r in records], counts["model_seconds"])]
    if tesseract:
        readings.append(compare.Reading(tesseract.engine, "tesseract", [r["tesseract"] for r in records],
                                        counts["tesseract_seconds"]))
    read = [Line(r["image"], r.get("reference")) for r in records]  # as compare's tables and reports take them
    if tesseract and any(line.reference is not None for line in read):
        print(compare.summary_table(readings, read))
        print(compare.SPEED_NOTE)
    if args.review:
        count = write_review(args.review, records, args.review_below, args.review_worst)
        print(f"{count} lines to review written to {args.review}/data.csv (the text column is the model's reading)",
              file=sys.stderr)
    if args.report:
        report = Path(args.report)
        paths = [report] + [report.with_name(f"{report.stem}-{r.slug}{report.suffix or '.md'}") for r in readings[1:]]
        for path in compare.write_reports(readings, read, paths):
            print(f"report written to {path}")
    scored = [r for r in records if r.get("reference") is not None]
    scores = None
    if scored:
        preds, refs = [r["prediction"] for r in scored], [r["reference"] for r in scored]
        scores = score(preds, refs)
        fails = failure_scores(preds, refs, [is_repetition(r) for r in scored])
        print(f"CER {scores['cer']:.4f} WER {scores['wer']:.4f} grapheme_CER {scores['grapheme_cer']:.4f} median_CER "
              f"{fails['median_cer']:.4f} catastrophic {fails['catastrophic_rate']:.4f} length_ratio "
              f"{fails['length_ratio']:.3f} (n={len(scored)})")
    if args.push_predictions:
        from hindi_ocr.prediction_push import push_predictions

        push_predictions(records, args.push_predictions, reader=reader, lines_per_page=per_page, scores=scores,
                         source=describe_input(args), output=args.output, token=args.hub_token,
                         private=args.hub_private_repo)
        print(f"predictions pushed to {args.push_predictions}")


def describe_input(args) -> str:
    if args.dataset_name:
        config = f" (config `{args.dataset_config}`)" if args.dataset_config else ""
        return f"the `{args.split}` split of `{args.dataset_name}`{config}"
    parts = [f"the seed-layout folder `{Path(args.data_dir).name}`"] if args.data_dir else []
    return " and ".join(parts + ([f"{len(args.images)} image paths"] if args.images else []))


if __name__ == "__main__":
    main()
