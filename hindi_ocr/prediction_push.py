"""``infer.py --push_predictions USER/NAME``: the predictions as a Hub dataset, with a card saying which model read
them, how, from what, and its scores when the lines had references.

The data is one parquet file (the ``--output`` file itself when it is parquet) under ``data/``, declared as the
``predictions`` split in the card's ``configs``, so ``datasets.load_dataset(NAME, split="predictions")`` loads it
with any ``datasets`` version and the Hub's viewer shows it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from huggingface_hub import DatasetCard, DatasetCardData

SPLIT = "predictions"
DATA_FILE = f"data/{SPLIT}-00000-of-00001.parquet"


def predictions_card(repo_id: str, *, reader, lines_per_page: int, scores: dict | None, source: str,
                     count: int, columns: Sequence[str]) -> DatasetCard:
    data = DatasetCardData(language=["hi"], task_categories=["image-to-text"], tags=["ocr", "hindi-ocr", "predictions"],
                           configs=[{"config_name": "default", "data_files": [{"split": SPLIT, "path": DATA_FILE}]}])
    model = f"`{reader.adapter}` (a LoRA adapter on `{reader.base}`)" if reader.adapter else f"`{reader.base}`"
    if scores:
        scored = scores.get("n", count)
        results = (f"Scores against the references ({scored} lines with one; corpus-level, "
                   "`hindi_ocr.scoring.score`):\n\n| CER | WER | grapheme_CER | lines |\n| --- | --- | --- | --- |\n"
                   f"| {scores['cer']:.4f} | {scores['wer']:.4f} | {scores['grapheme_cer']:.4f} | {scored} |\n")
    else:
        results = "The lines had no references: no scores.\n"
    pages = (f"{lines_per_page} lines per page" if lines_per_page > 1 else "one line per image")
    body = f"""# Predictions of {reader.base if not reader.adapter else reader.adapter}

{count} Hindi text lines read by GOT-OCR2 with {model}, with `infer.py` of hindi-ocr (greedy decoding, line layout
`{reader.line_layout}`, {pages}, at most {reader.max_new_tokens} new tokens per line), from {source}.

{results}
Columns: {', '.join(f'`{c}`' for c in columns)} (`image` names the line image: its file, or its row).

```python
import datasets
predictions = datasets.load_dataset("{repo_id}", split="{SPLIT}")
```
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def push_predictions(records: Sequence[dict], repo_id: str, *, reader, lines_per_page: int, scores: dict | None,
                     source: str, output: str | None = None, token: str | None = None,
                     private: bool = False) -> None:
    """Create the dataset repo if needed and upload the parquet file and the card (retried like model pushes)."""
    from huggingface_hub import HfApi

    from .hub import push_with_retries
    from .prediction_files import parquet_table

    folder = Path(tempfile.mkdtemp(prefix="hindi-ocr-predictions-"))
    target = folder / DATA_FILE
    target.parent.mkdir(parents=True)
    if output and Path(output).suffix.lower() == ".parquet":
        shutil.copyfile(output, target)
    else:
        import pyarrow.parquet as pq

        pq.write_table(parquet_table(records), target)
    columns = list(dict.fromkeys(key for record in records for key in record))
    scored = sum(record.get("reference") is not None for record in records)
    card = predictions_card(repo_id, reader=reader, lines_per_page=lines_per_page,
                            scores=scores and {**scores, "n": scored}, source=source, count=len(records),
                            columns=columns)
    card.save(folder / "README.md")
    api = HfApi(token=token)

    def push():
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                          commit_message=f"Predictions of {reader.adapter or reader.base}")

    push_with_retries(push, repo_id, str(folder), what="the predictions and their card", repo_type="dataset")
    shutil.rmtree(folder)
