#!/usr/bin/env python
"""Read Hindi text lines with GOT-OCR2 and a trained LoRA adapter, from a local folder or the Hub.

    python infer.py --adapter USER/NAME line1.png line2.png
    python infer.py --model_name_or_path BASE --adapter outputs/run --data_dir TestSamples --output preds.jsonl
    python infer.py --adapter outputs/run --merge_lora merged/      # standalone checkpoint, no peft needed
    python infer.py --adapter USER/NAME --merge_lora merged/ --push_to_hub USER/NAME-merged
"""

import argparse
import logging

from hindi_ocr.checks import positive_int
from hindi_ocr.examples import LINE_LAYOUTS, OcrExampleBuilder
from hindi_ocr.hub import publish_merged
from hindi_ocr.inference import (
    lines_from_data_dir, lines_from_paths, load_settings, read_lines, save_settings, write_predictions,
)
from hindi_ocr.modeling import adapter_base_model, configure_generation, load_for_reading
from hindi_ocr.scoring import score
from hindi_ocr.training import DEFAULT_MODEL


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="line images or folders of them")
    p.add_argument("--data_dir", help="seed-layout folder (data.csv + images): references give CER/WER")
    p.add_argument("--model_name_or_path", help=f"base GOT-OCR2 (default: the adapter's base, else {DEFAULT_MODEL})")
    p.add_argument("--model_revision", default=None, help="branch, tag or commit of the base")
    p.add_argument("--adapter", help="LoRA adapter: a folder written by train.py or a Hub id")
    p.add_argument("--adapter_revision", default=None, help="branch, tag or commit of the adapter on the Hub")
    p.add_argument("--line_layout", choices=LINE_LAYOUTS, help="default: what the adapter was trained with")
    p.add_argument("--batch_size", type=positive_int, default=8)
    p.add_argument("--max_new_tokens", type=positive_int, default=256)
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--output", help="write predictions to FILE.jsonl or FILE.csv")
    p.add_argument("--merge_lora", metavar="DIR", help="merge the adapter into the base and save it to DIR")
    p.add_argument("--push_to_hub", metavar="REPO_ID", help="with --merge_lora: upload the merged model and a card")
    p.add_argument("--hub_private_repo", action="store_true", help="create the --push_to_hub repo private")
    p.add_argument("--hub_token", default=None, help="token for private repos (default: the logged-in token)")
    p.add_argument("--allow_pickle_adapter", action="store_true",
                   help="load an adapter that has only adapter_model.bin (a pickle: only from a source you trust)")
    args = p.parse_args(argv)
    if not (args.images or args.data_dir or args.merge_lora):
        p.error("give line images/folders, --data_dir, or --merge_lora")
    if args.merge_lora and not args.adapter:
        p.error("--merge_lora needs --adapter")
    if args.push_to_hub and not args.merge_lora:
        p.error("--push_to_hub uploads the --merge_lora folder: give --merge_lora DIR")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    lines = lines_from_data_dir(args.data_dir) if args.data_dir else []
    lines += lines_from_paths(args.images)  # bad images and rows fail here, before any model loads
    base = args.model_name_or_path or (args.adapter and adapter_base_model(
        args.adapter, args.adapter_revision, args.hub_token)) or DEFAULT_MODEL
    model, processor = load_for_reading(base, args.adapter, revision=args.model_revision,
                                        adapter_revision=args.adapter_revision, token=args.hub_token,
                                        dtype=args.dtype, merge=bool(args.merge_lora),
                                        allow_pickle_adapter=args.allow_pickle_adapter)
    configure_generation(model, processor, max_new_tokens=args.max_new_tokens)
    settings = load_settings(args.adapter or base, args.adapter_revision, args.hub_token)
    line_layout = args.line_layout or settings.get("line_layout", "squash")
    if args.merge_lora:
        model.save_pretrained(args.merge_lora)
        processor.save_pretrained(args.merge_lora)
        save_settings(args.merge_lora, line_layout)
        print(f"merged model written to {args.merge_lora}")
        if args.push_to_hub:
            publish_merged(args.merge_lora, args.push_to_hub, base, args.adapter, args.adapter_revision,
                           token=args.hub_token, private=args.hub_private_repo, line_layout=line_layout,
                           max_new_tokens=args.max_new_tokens, num_image_tokens=processor.num_image_tokens)
            print(f"merged model pushed to {args.push_to_hub}")

    if not lines:
        return
    builder = OcrExampleBuilder(processor, line_layout=line_layout)
    records = []
    for line, prediction in zip(lines, read_lines(model, builder, lines, args.batch_size)):
        record = {"image": line.image, "prediction": prediction}
        if line.reference is not None:
            record["reference"] = line.reference
        records.append(record)
        print(f"{line.image}\t{prediction}", flush=True)
    if args.output:
        write_predictions(args.output, records)
    scored = [r for r in records if "reference" in r]
    if scored:
        m = score([r["prediction"] for r in scored], [r["reference"] for r in scored])
        print(f"CER {m['cer']:.4f} WER {m['wer']:.4f} grapheme_CER {m['grapheme_cer']:.4f} (n={len(scored)})")


if __name__ == "__main__":
    main()
