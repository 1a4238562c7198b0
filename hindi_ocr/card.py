"""The model card written into output_dir and pushed with the model: metadata the Hub understands (base model,
dataset, eval results, widget), sample line images, a results table, usage for peft and for transformers, and the
training recipe; also the card of a merged checkpoint (infer.py --merge_lora).

``OcrTrainer.create_model_card`` calls :func:`write_model_card` so that this card, not the Trainer's draft or peft's,
is the README.md in output_dir and on the Hub. Pushing it is :mod:`hindi_ocr.hub`'s job.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData, constants

from .card_reading import base_license, hub_id
from .examples import to_rgb
from .pages import card_note

UNKNOWN_LICENSE = "other"  # the Hub's value for "see the text": written when the base's card states none
LANGUAGE = "hi"
PIPELINE_TAG = "image-to-text"
TAGS = ["ocr", "hindi", "devanagari", "got-ocr2", "text-line-ocr"]
TASK_NAME = "Hindi text-line OCR"
SAMPLES_DIR = "samples"
NUM_SAMPLES = 3
GOT_IMAGE_TOKENS = 256  # GotOcr2Processor's default; other bases need processor.num_image_tokens set
METRICS = (("cer", "CER"), ("wer", "WER"), ("grapheme_cer", "grapheme CER"), ("median_cer", "median line CER"),
           ("catastrophic_rate", "catastrophic"), ("length_ratio", "length ratio"))


def write_model_card(trainer) -> Path:
    """Sample line images and our card into output_dir, where Trainer.push_to_hub uploads them from."""
    out = Path(trainer.args.output_dir)
    split, samples = write_samples(out, getattr(trainer, "splits", None))
    path = out / "README.md"
    adapter_card(trainer, samples, split).save(path)
    return path


def write_samples(output_dir: Path, splits, count: int = NUM_SAMPLES) -> tuple[str | None, list[tuple[str, str]]]:
    """The first lines of the test split (else validation) as samples/1.png ...: (split, [(file, text)])."""
    from .data import first_rows  # a streamed split has no len() and no select()

    split, rows = None, []
    for name in ("test", "validation"):
        rows = list(first_rows(splits[name], count)) if splits and name in splits else []
        if rows:
            split = name
            break
    if split is None:
        return None, []
    (output_dir / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    samples = []
    for number, row in enumerate(rows, start=1):
        name = f"{SAMPLES_DIR}/{number}.png"
        to_rgb(row["image"]).save(output_dir / name)
        samples.append((name, row["text"]))
    # The seed layout, so that `infer.py --data_dir OUTPUT_DIR/samples` reads them with references (CER).
    with open(output_dir / SAMPLES_DIR / "data.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("image_file", "text")] + [(Path(name).name, text) for name, text in samples])
    return split, samples


def final_metrics(output_dir: Path, log_history: list[dict]) -> tuple[str, dict] | None:
    """(split, {cer, wer, ...}) of the last evaluation: test_results.json, else the last validation eval."""
    test = output_dir / "test_results.json"
    if test.is_file():
        return "test", _unprefixed(json.loads(test.read_text(encoding="utf-8")), "test_")
    evals = [record for record in log_history if "eval_cer" in record]
    return ("validation", _unprefixed(evals[-1], "eval_")) if evals else None


def _unprefixed(metrics: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


def dataset_reference(data_args, splits) -> dict:
    """How the card names the training data: a Hub dataset id, or this project's builder config and folder."""
    config = next(iter(splits.values())).info.config_name if splits else None
    name = getattr(data_args, "dataset_name", None)
    if hub_id(name):
        return {"hub_id": name, "type": name, "name": name, "config": config}
    folder = Path(data_args.data_dir).name if getattr(data_args, "data_dir", None) else None
    label = f"Hindi text lines ({config}{': ' + folder if folder else ''})"
    return {"hub_id": None, "type": "hindi-line-ocr", "name": label, "config": config}


def eval_results(metrics: dict, split: str, dataset: dict) -> list[EvalResult]:
    """model-index entries (CER, WER) that the Hub shows as the model's evaluation results."""
    return [
        EvalResult(task_type=PIPELINE_TAG, task_name=TASK_NAME, dataset_type=dataset["type"],
                   dataset_name=dataset["name"], dataset_config=dataset["config"], dataset_split=split,
                   metric_type=key, metric_name=label, metric_value=metrics[key])
        for key, label in METRICS[:2] if key in metrics
    ]


def widget_entries(repo_id: str | None, revision: str | None, samples: list[tuple[str, str]]) -> list[dict]:
    """Widget inputs: the sample images by their URL in the repo (only known once there is a repo id)."""
    if not repo_id:
        return []
    base = f"{constants.ENDPOINT}/{repo_id}/resolve/{revision or 'main'}"
    return [{"src": f"{base}/{name}", "example_title": f"Sample {number}"}
            for number, (name, _) in enumerate(samples, start=1)]


def license_section(base: str | None, licence: dict) -> str:
    """One sentence under the results: whose licence the metadata states, or that nobody's could be read."""
    if licence:
        return (f"## Licence\n\n`{licence['license']}`, as stated by the card of the base model `{hub_id(base)}`, "
                "whose terms this model is bound by.")
    return (f"## Licence\n\nThe base model `{_display(base)}` states no licence this project could read, so the "
            f"metadata says `{UNKNOWN_LICENSE}`: check the base model's terms before you use or share this model.")


def card_metadata(*, model_name: str, base_model: str | None, library_name: str, datasets: list[str] | None,
                  results: list[EvalResult], widget: list[dict], licence: dict | None = None) -> ModelCardData:
    return ModelCardData(
        model_name=model_name, base_model=hub_id(base_model), library_name=library_name, pipeline_tag=PIPELINE_TAG,
        language=LANGUAGE, **(licence or {"license": UNKNOWN_LICENSE}), datasets=datasets or None, tags=list(TAGS),
        eval_results=results or None, widget=widget or None,
    )


def adapter_card(trainer, samples: list[tuple[str, str]], sample_split: str | None) -> ModelCard:
    """The card of a training run: metadata, results, samples, how to run it, hyper-parameters, limitations."""
    args, model = trainer.args, trainer.model
    out = Path(args.output_dir)
    repo_id = getattr(trainer, "hub_model_id", None) or args.hub_model_id
    source = repo_id or str(out)
    peft_config = getattr(model, "peft_config", {}).get("default")
    base = peft_config.base_model_name_or_path if peft_config else model.config._name_or_path
    splits = getattr(trainer, "splits", None) or {}
    dataset = dataset_reference(getattr(trainer, "data_args", None), splits)
    evaluated = final_metrics(out, trainer.state.log_history)
    results = eval_results(evaluated[1], evaluated[0], dataset) if evaluated else []
    collator = trainer.data_collator
    licence = base_license(base, args.hub_token) if args.push_to_hub else {}  # looked up when the card is pushed
    data = card_metadata(
        model_name=repo_id or out.name, base_model=base, library_name="peft" if peft_config else "transformers",
        datasets=[dataset["hub_id"]] if dataset["hub_id"] else None, results=results,
        widget=widget_entries(repo_id, args.hub_revision, samples), licence=licence,
    )
    kind = "A LoRA adapter for" if peft_config else "A fine-tune of"
    per_page = collator.pages.lines if collator.pages is not None else 1
    reads = (f"up to {per_page} printed lines of Hindi (Devanagari) text typeset on one page image"
             if per_page > 1 else "one printed line of Hindi (Devanagari) text from an image")
    sections = [
        f"# {(repo_id or out.name).split('/')[-1]}",
        f"{kind} the GOT-OCR2 model `{_display(base)}` that reads {reads} and returns the transcription "
        "(Unicode NFC).",
        "## Results\n\n" + results_table(evaluated, splits, max_new_tokens=per_page * (collator.max_target_tokens + 1)),
        samples_section(samples, sample_split),
        demo_section(demo_space_id(args, repo_id)),
        usage_section(source, base if peft_config else None, collator.line_layout,
                      max_new_tokens=collator.max_target_tokens + 1,
                      num_image_tokens=getattr(trainer.processing_class, "num_image_tokens", GOT_IMAGE_TOKENS),
                      lines_per_page=per_page),
        "## Training\n\n" + training_section(trainer, base, dataset, splits, peft_config),
        limitations_section(f"{_count(splits['train'])} lines" if "train" in splits else "lines not recorded here",
                            collator.max_target_tokens, per_page),
        license_section(base, licence),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(s for s in sections if s) + "\n")


def _count(split) -> str:
    """A split's number of lines for the card; "streamed" for a stream (--streaming), whose length is unknown."""
    from .data import num_rows

    n = num_rows(split)
    return "streamed" if n is None else str(n)


def _display(name: str | None) -> str:
    return hub_id(name) or f"{Path(name or 'unknown').name} (a local checkpoint)"


def results_table(evaluated: tuple[str, dict] | None, splits, max_new_tokens: int) -> str:
    if not evaluated:
        return "No evaluation was run."
    split, metrics = evaluated
    lines = _count(splits[split]) if split in splits else "?"
    header = "| split | lines | " + " | ".join(label for _, label in METRICS) + " |"
    row = f"| {split} | {lines} | " + " | ".join(f"{metrics[k]:.4f}" if k in metrics else "-" for k, _ in METRICS)
    return (f"{header}\n|---" + "|---" * (len(METRICS) + 1) + f"|\n{row} |\n\nCharacter, word and grapheme-cluster "
            "error rates: edit distance divided by the reference length, lower is better. Catastrophic: the share of "
            "lines with CER >= 1 or ended by the repetition stop; length ratio: mean prediction/reference length. Greedy "
            f"decoding, at most {max_new_tokens} new tokens, stopping at `<|im_end|>` or at a loop.")


_SAMPLE_ROW = re.compile(r"^\| !\[sample \d+\]\(([^)\s]+)\) \| (.*) \|$", re.MULTILINE)


def card_samples(card_text: str) -> list[tuple[str, str]]:
    """[(file, reference)] back from the table :func:`samples_section` writes (the demo's example lines)."""
    return [(name, cell.replace("\\|", "|")) for name, cell in _SAMPLE_ROW.findall(card_text)]


def demo_space_id(args, repo_id: str | None) -> str | None:
    """The Space ``train.py --push_demo_space`` publishes (``--demo_space_id``, default ``<model repo>-demo``)."""
    if not getattr(args, "push_demo_space", False) or not repo_id:
        return None
    return getattr(args, "demo_space_id", None) or f"{repo_id}-demo"


def demo_section(space_id: str | None) -> str:
    if not space_id:
        return ""
    return (f"## Try it in a browser\n\n[{space_id}]({constants.ENDPOINT}/spaces/{space_id}) is a Gradio Space "
            "running this model: drop in a line image of your own, add its text to see CER and the characters "
            "read wrong, with Tesseract's reading beside it.")


def samples_section(samples: list[tuple[str, str]], split: str | None) -> str:
    if not samples:
        return ""
    rows = "\n".join(f"| ![sample {n}]({name}) | {_cell(text)} |" for n, (name, text) in enumerate(samples, start=1))
    return f"## Sample lines\n\nFrom the {split} split (not trained on):\n\n| image | reference |\n|---|---|\n{rows}"


# What a reader must do to a line image before GOT's processor, for layouts other than the default squash.
LAYOUT_NOTES = {
    "letterbox": "\n\nThis model was trained with `--line_layout letterbox`: pad each line to a square with its paper "
                 "colour, keeping the aspect ratio, before the processor (infer.py does this).",
    "fold": "\n\nThis model was trained with `--line_layout fold`: cut each line into k = round(sqrt(width / height)) "
            "equal pieces stacked top to bottom (`hindi_ocr.examples.fold`) before the processor (infer.py does this).",
}


def usage_section(model_id: str, base: str | None, line_layout: str, max_new_tokens: int,
                  num_image_tokens: int = GOT_IMAGE_TOKENS, lines_per_page: int = 1) -> str:
    """How to read lines with it: this project's infer.py, and plain transformers (+ peft for an adapter)."""
    flag = f"--adapter {model_id}" if base else f"--model_name_or_path {model_id}"
    code = python_usage(model_id, base, max_new_tokens, num_image_tokens)
    layout_note = LAYOUT_NOTES.get(line_layout, "") + card_note(lines_per_page)
    return (
        "## How to use\n\nWith this project (line images, folders of them, or a `data.csv` folder that also gives "
        f"CER/WER):\n\n```bash\npython infer.py {flag} line1.png line2.png\npython infer.py {flag} --data_dir "
        f"TestSamples --output predictions.csv\n```\n\nWith transformers{' and peft' if base else ''} only:\n\n"
        f"```python\n{code}```{layout_note}"
    )


def python_usage(model_id: str, base: str | None, max_new_tokens: int, num_image_tokens: int = GOT_IMAGE_TOKENS) -> str:
    """Code that reads ``line.png``: greedy generation from GOT's OCR prompt, stopping at ``<|im_end|>``."""
    if base:
        load = (f'model = GotOcr2ForConditionalGeneration.from_pretrained("{base}")\n'
                f'model = PeftModel.from_pretrained(model, "{model_id}").eval()\n')
    else:
        load = f'model = GotOcr2ForConditionalGeneration.from_pretrained("{model_id}").eval()\n'
    tokens = "" if num_image_tokens == GOT_IMAGE_TOKENS else (
        f"processor.num_image_tokens = {num_image_tokens}  # this base's image tokens per tile (the default is 256)\n")
    return (
        "import torch\n"
        + ("from peft import PeftModel\n" if base else "")
        + "from PIL import Image\nfrom transformers import AutoProcessor, GotOcr2ForConditionalGeneration\n\n"
        f'processor = AutoProcessor.from_pretrained("{model_id}")\n{tokens}{load}\n'
        'inputs = processor(images=Image.open("line.png").convert("RGB"), return_tensors="pt")\n'
        'end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")\n'
        "with torch.inference_mode():\n"
        f"    ids = model.generate(**inputs, max_new_tokens={max_new_tokens}, do_sample=False, eos_token_id=end, "
        "pad_token_id=end)\n"
        'print(processor.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))\n'
    )


def training_section(trainer, base: str | None, dataset: dict, splits, peft_config) -> str:
    args, state, collator = trainer.args, trainer.state, trainer.data_collator
    counts = ", ".join(f"{_count(rows)} {split}" for split, rows in splits.items())
    data = f"`{dataset['hub_id']}`" if dataset["hub_id"] else dataset["name"]
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    warmup = f"{args.warmup_steps:.0%} of the steps" if 0 < args.warmup_steps < 1 else f"{args.warmup_steps:g} steps"
    rows = {
        "base model": f"`{_display(base)}`",
        "data": f"{data}; {counts} lines" if counts else data,
        "optimizer steps": f"{state.global_step} (epochs: {state.epoch or 0:.2f})",
        "learning rate": f"{args.learning_rate:g}, {_value(args.lr_scheduler_type)} schedule, warm-up {warmup}",
        "batch": f"{args.per_device_train_batch_size} per device x {args.gradient_accumulation_steps} accumulation "
                 f"x {args.world_size} device(s) = {batch} lines",
        "optimizer": f"{_value(args.optim)}, weight decay {args.weight_decay:g}",
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else str(trainer.model.dtype).replace("torch.", ""),
        "seed": args.seed,
        "line layout": collator.line_layout if collator.pages is None else f"pages of {collator.pages.lines} lines "
                       f"(`--lines_per_page {collator.pages.lines}`), a batch counts pages",
        "max target tokens": collator.max_target_tokens,
    }
    if peft_config:
        rows["LoRA"] = (f"r={peft_config.r}, alpha={peft_config.lora_alpha}, dropout={peft_config.lora_dropout}, "
                        f"targets `{peft_config.target_modules}`")
        if peft_config.modules_to_save:
            rows["trained in full"] = ", ".join(sorted(peft_config.modules_to_save))
    table = "\n".join(f"| {key} | {_cell(value)} |" for key, value in rows.items())
    return f"Trained with this project's `train.py`.\n\n| setting | value |\n|---|---|\n{table}"


def _cell(value) -> str:
    """A Markdown table cell: a ``|`` (as in LoRA target regexes) would end the cell."""
    return str(value).replace("|", "\\|")


def _value(option) -> str:
    return str(getattr(option, "value", option))


def limitations_section(trained_on: str, max_target_tokens: int | None = None, lines_per_page: int = 1) -> str:
    cut = (f"- Transcriptions were cut at {max_target_tokens} tokens in training: longer lines may be read only in "
           "part.\n" if max_target_tokens else "")
    reads = f"pages typeset from up to {lines_per_page} line images" if lines_per_page > 1 else "one line per image"
    return (
        "## Limitations\n\n"
        f"- It reads {reads}: split scanned pages and paragraphs into lines first.\n"
        f"- It was fine-tuned on {trained_on}. Fonts, scans, photos or handwriting unlike them may read much worse: "
        "measure CER on a sample of your own lines (`infer.py --data_dir`) before relying on it.\n"
        f"{cut}"
        "- Output is Unicode NFC. Latin letters and digits inside a line are read only as well as the base model "
        "and the training lines allow."
    )


def merged_card(repo_id: str, base: str | None, adapter: str, adapter_card_: ModelCard | None, line_layout: str,
                max_new_tokens: int, num_image_tokens: int, lines_per_page: int = 1,
                licence: dict | None = None) -> ModelCard:
    """Card of a merged checkpoint: the adapter card's results, data and widget, with transformers-only usage;
    ``licence`` is :func:`base_license` of ``base``."""
    source = adapter_card_.data if adapter_card_ else ModelCardData()
    data = card_metadata(model_name=repo_id, base_model=base, library_name="transformers", datasets=source.datasets,
                         results=source.eval_results or [], widget=source.get("widget") or [], licence=licence)
    sections = [
        f"# {repo_id.split('/')[-1]}",
        f"GOT-OCR2 `{_display(base)}` with the LoRA adapter `{hub_id(adapter) or Path(adapter).name}` merged into "
        "its weights: a standalone checkpoint that reads one printed line of Hindi (Devanagari) text, no peft needed. "
        "The evaluation results are the adapter's.",
        usage_section(repo_id, None, line_layout, max_new_tokens, num_image_tokens, lines_per_page),
        limitations_section(f"the training lines of the adapter `{hub_id(adapter) or Path(adapter).name}`",
                            lines_per_page=lines_per_page),
        license_section(base, licence or {}),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
