"""Publish the line dataset on the Hub as parquet with a dataset card.

Parquet with the image bytes inside needs no loading script, so ``load_dataset("USER/NAME")`` works with every
``datasets`` version, including 4.x, which no longer runs scripts such as this folder's builder.

    python -m dataset_builder.publish --data_dir DIR --repo_id USER/NAME [--config csv|swift_json|synthetic]
        [--private] [--dataset_options k=v,...] [--license ID] [--token TOKEN]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets
from huggingface_hub import DatasetCard

from hindi_ocr.data import load_line_dataset
from hindi_ocr.arguments import parse_options

SYNTHETIC_TEXT_LICENSE = "cc-by-sa-4.0"  # wordfreq's word lists; the fonts are SIL OFL 1.1
SOURCES = {
    "csv": "annotated line images listed in `data.csv` (image_file,text)",
    "swift_json": "annotated line images listed in ms-swift JSON rows (query, response, images)",
    "synthetic": "lines rendered with the Devanagari fonts packaged on PyPI (SIL OFL 1.1), with light scan-like "
                 "augmentation",
}
FEATURES = {
    "image": "one text line (PNG/JPEG bytes)",
    "text": "the transcription, Unicode NFC, outer whitespace stripped (ZWJ/ZWNJ kept)",
    "image_file": "the image's name in the source annotations",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo_id", required=True, help="dataset repo to create or update, USER/NAME")
    p.add_argument("--data_dir", help="folder with data.csv (csv) or the JSON rows (swift_json)")
    p.add_argument("--config", choices=sorted(SOURCES), help="default: csv with --data_dir, else synthetic")
    p.add_argument("--dataset_options", help="builder options, key=value,... (see dataset_builder/README.md)")
    p.add_argument("--license", help="licence id for the card (default: cc-by-sa-4.0 for built-in synthetic "
                                     "text, else 'unknown': set the licence of your own lines)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--token", help="write token (default: the logged-in token or HF_TOKEN)")
    return p.parse_args(argv)


def dataset_card(existing: DatasetCard, repo_id: str, splits, config: str, options: dict, data_dir: str | None,
                 license_id: str) -> DatasetCard:
    """``existing`` (what push_to_hub wrote: dataset_info, configs) plus our metadata and text."""
    total = sum(len(rows) for rows in splits.values())
    data = existing.data
    tags = ["ocr", "hindi", "devanagari", "text-line-ocr"] + (["synthetic"] if config == "synthetic" else [])
    metadata = dict(language=["hi"], license=license_id, task_categories=["image-to-text"], tags=tags,
                    size_categories=[_size_category(total)], pretty_name=f"Hindi text lines ({repo_id.split('/')[-1]})")
    for key, value in metadata.items():
        data[key] = value
    types = next(iter(splits.values())).features
    features = "\n".join(f"| `{name}` | {_type_name(types[name])} | {meaning} |" for name, meaning in FEATURES.items())
    counts = "\n".join(f"| {split} | {len(rows)} |" for split, rows in splits.items())
    built = ", ".join([f"config `{config}`"] + [f"`{k}={v}`" for k, v in options.items()])
    folder = f" from the folder `{Path(data_dir).name}`" if data_dir else ""
    licence_note = ("" if license_id != "unknown" else
                    " The publisher did not state a licence for these lines: ask them before reusing the data.")
    body = f"""# {repo_id.split('/')[-1]}

Images of single printed Hindi (Devanagari) text lines, each with its transcription, for fine-tuning line OCR
models such as GOT-OCR2.

```python
from datasets import load_dataset

lines = load_dataset("{repo_id}")
lines["train"][0]["image"], lines["train"][0]["text"]   # a PIL image and its text
```

Stored as parquet with the image bytes inside: any `datasets` version loads it, no loading script needed.
Fine-tune on it with `python train.py --dataset_name {repo_id}`.

## Features

| feature | type | meaning |
|---|---|---|
{features}

## Splits

| split | lines |
|---|---|
{counts}

## Source

{SOURCES[config].capitalize()}{folder}.

Built with this project's dataset builder ({built}): texts are NFC-normalised, rows with missing or unreadable
images are rejected (or skipped with `skip_invalid`), and splits the source does not provide are carved off the
training lines by a seeded hash.

## Licence

`{license_id}`.{licence_note}
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _type_name(feature) -> str:
    return feature.dtype if isinstance(feature, datasets.Value) else type(feature).__name__


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def main(argv=None) -> None:
    args = parse_args(argv)
    options = parse_options(args.dataset_options)
    splits = load_line_dataset(config_name=args.config, data_dir=args.data_dir, **options)
    config = next(iter(splits.values())).info.config_name
    license_id = args.license or (SYNTHETIC_TEXT_LICENSE if config == "synthetic" and "text_file" not in options
                                  else "unknown")
    splits.push_to_hub(args.repo_id, private=args.private, token=args.token,
                       commit_message=f"Upload {config} lines as parquet")
    existing = DatasetCard.load(args.repo_id, repo_type="dataset", token=args.token)
    card = dataset_card(existing, args.repo_id, splits, config, options, args.data_dir, license_id)
    card.push_to_hub(args.repo_id, repo_type="dataset", token=args.token, commit_message="Dataset card")
    counts = ", ".join(f"{len(rows)} {split}" for split, rows in splits.items())
    print(f"pushed {counts} lines to datasets/{args.repo_id}")


if __name__ == "__main__":
    main()
