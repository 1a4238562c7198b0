"""`infer.py --merge_lora`: the merged standalone model reads exactly what the base plus the adapter reads.

The adapter here changes what the base reads on every line (asserted), so a merge that drops the adapter
(``unload()`` instead of ``merge_and_unload()``) or merges it wrongly reads differently. Checked three ways: the
predictions of the merged model in the same run that merges it, of the merged folder loaded on its own (no peft),
and their logits against the unmerged adapter's on a training batch.
"""

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from PIL import Image
from safetensors import safe_open

import infer
from hindi_ocr.examples import OcrExampleBuilder
from hindi_ocr.modeling import LANGUAGE_MODEL_PROJECTIONS, load_for_reading
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model, load_tiny

LINES = ["नमस्ते दुनिया", "भारत एक देश है", "किताब पढ़ो", "पानी गरम है"]
MAX_NEW_TOKENS = "6"
# Merging adds B @ A into each weight: float32 rounding moves logits by ~1e-6 here (measured max 5e-7); the
# adapter itself moves them by up to 1.8 (asserted > 0.1).
LOGITS_ATOL = 1e-4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny base, a LoRA adapter with random (non-zero) B matrices saved as train.py saves one, and lines."""
    work = tmp_path_factory.mktemp("merge")
    base = build_tiny_model(work / "tiny")
    model, _ = load_tiny(base)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LANGUAGE_MODEL_PROJECTIONS, init_lora_weights=False)
    adapter = work / "adapter"
    get_peft_model(model, config).save_pretrained(adapter)
    (adapter / "hindi_ocr.json").write_text(json.dumps({"line_layout": "squash"}))
    lines = write_line_folder(work / "lines", LINES, size=20)
    return work, base, adapter, lines


def read(capsys, *args) -> list[str]:
    """infer.py's predictions, one per line of data.csv."""
    capsys.readouterr()
    infer.main([*args, "--max_new_tokens", MAX_NEW_TOKENS])
    out = [line for line in capsys.readouterr().out.splitlines() if "\t" in line]
    assert len(out) == len(LINES), out
    return [line.split("\t", 1)[1] for line in out]


def test_merged_model_reads_what_base_plus_adapter_reads(setup, capsys):
    work, base, adapter, lines = setup
    data = ["--data_dir", str(lines)]
    with_adapter = read(capsys, "--adapter", str(adapter), *data)
    base_only = read(capsys, "--model_name_or_path", str(base), *data)
    assert all(a != b for a, b in zip(with_adapter, base_only)), (with_adapter, base_only)  # the adapter matters

    merged = work / "merged"
    assert read(capsys, "--adapter", str(adapter), "--merge_lora", str(merged), *data) == with_adapter
    assert read(capsys, "--model_name_or_path", str(merged), *data) == with_adapter  # standalone, from disk
    with safe_open(str(merged / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and not [n for n in names if "lora_" in n or "base_layer" in n]  # a plain GOT-OCR2 checkpoint
    assert not (merged / "adapter_config.json").exists()


def test_merged_logits_match_the_adapter_within_rounding(setup):
    work, base, adapter, lines = setup
    merged = work / "merged_logits"
    infer.main(["--adapter", str(adapter), "--merge_lora", str(merged)])
    images = [Image.open(lines / "output_images" / f"{i}.png") for i in range(len(LINES))]
    builder, logits = None, {}
    for name, (source, extra) in {"adapter": (str(base), str(adapter)), "merged": (str(merged), None),
                                  "base": (str(base), None)}.items():
        model, processor = load_for_reading(source, extra, dtype="float32")
        builder = builder or OcrExampleBuilder(processor)
        batch = builder.training_inputs(images, LINES)
        with torch.no_grad():
            logits[name] = model(**batch).logits
    torch.testing.assert_close(logits["merged"], logits["adapter"], rtol=0, atol=LOGITS_ATOL)
    assert (logits["base"] - logits["adapter"]).abs().max() > 0.1  # the tolerance tells base from adapter
