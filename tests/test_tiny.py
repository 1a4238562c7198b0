"""The tiny random-init GOT-OCR2 checkpoint written by ``python -m hindi_ocr.tiny`` (offline, seconds)."""

import math
import unicodedata

import pytest
import torch
from PIL import Image

from hindi_ocr import tiny
from hindi_ocr.examples import num_image_tokens_for

GOT_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<ref>", "</ref>", "<box>", "</box>",
    "<quad>", "</quad>", "<img>", "</img>", "<imgpad>",
]

TRICKY = [
    "नमस्ते दुनिया।",
    "क्\u200dष और क्\u200cष",  # ZWJ / ZWNJ inside a conjunct
    "\u0958\u0959\u095a\u095b\u095c\u095d\u095e\u095f",  # precomposed nukta letters क़ ख़ ग़ ज़ ड़ ढ़ फ़ य़
    "क\u093c ज\u093cरा फ\u093cिल्म",  # the same with a separate nukta (NFD-like): must stay as written
    "श्री क्ष त्र ज्ञ द्ध द्व ह्म ह्र स्त्र",
    "ऋषि ॠ ऌ ॡ कृ कॄ",
    "चाँद संसार दुःख ॐ ऽ ॰ ॲ ऑ कॉफ़ी",
    "१२३४५६७८९० और 1234567890",
    "Delhi दिल्ली, India (भारत) - 15/08/1947; \"उद्धरण\" 'quote'!? ₹500 ५०%",
    "पहला वाक्य। दूसरा वाक्य॥",
    "  दो  स्पेस   और\tटैब  ",
    "ABC xyz qwerty हिंदी mixed ãé",
    "\ua8e0\ua8f2 \u1cd0 \u0951\u0952",  # Devanagari Extended / Vedic marks
    "ज़्यादा ग़लत फ़ौरन",
    "🙂 emoji के साथ",
]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "ckpt"
    assert tiny.main([str(out)]) == 0  # the CLI entry point, in-process
    return out


@pytest.fixture(scope="module")
def loaded(ckpt):
    from transformers import AutoProcessor, GotOcr2ForConditionalGeneration

    model = GotOcr2ForConditionalGeneration.from_pretrained(ckpt)
    processor = AutoProcessor.from_pretrained(ckpt)
    processor.num_image_tokens = num_image_tokens_for(model.config)
    return model, processor


def test_files_small(ckpt):
    names = {p.name for p in ckpt.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    total = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024, total


def test_loads_back(loaded):
    from transformers import GotOcr2ForConditionalGeneration, GotOcr2Processor

    model, processor = loaded
    assert isinstance(model, GotOcr2ForConditionalGeneration)
    assert isinstance(processor, GotOcr2Processor)
    ip = processor.image_processor
    assert (ip.size["height"], ip.size["width"]) == (256, 256)


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_exact(loaded, text):
    tok = loaded[1].tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id is None or tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text
    # and with the target framing used in training (text + <|im_end|>)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode(ids + [im_end], skip_special_tokens=True) == text


def test_round_trip_keeps_normalisation_form(loaded):
    tok = loaded[1].tokenizer
    s = "क़िला ज़िंदगी"
    for form in ("NFC", "NFD"):
        t = unicodedata.normalize(form, s)
        assert tok.decode(tok(t, add_special_tokens=False)["input_ids"]) == t


def test_special_tokens(loaded):
    model, processor = loaded
    tok = processor.tokenizer
    vocab = tok.get_vocab()
    ids = set()
    for t in GOT_SPECIALS:
        assert t in vocab, t
        enc = tok(t, add_special_tokens=False)["input_ids"]
        assert enc == [vocab[t]], (t, enc)
        assert t in tok.all_special_tokens, t
        ids.add(vocab[t])
    assert len(ids) == len(GOT_SPECIALS)
    # special tokens inside text split off cleanly and are dropped by skip_special_tokens
    enc = tok("<|im_start|>नमस्ते<|im_end|>", add_special_tokens=False)["input_ids"]
    assert enc[0] == vocab["<|im_start|>"] and enc[-1] == vocab["<|im_end|>"]
    assert tok.decode(enc, skip_special_tokens=True) == "नमस्ते"
    assert 700 <= len(tok) <= 1100
    assert tok.pad_token_id is not None


def test_config_facts(loaded):
    model, processor = loaded
    tok = processor.tokenizer
    cfg = model.config
    assert cfg.image_token_index == tok.convert_tokens_to_ids("<imgpad>")
    assert cfg.image_token_id == cfg.image_token_index
    assert cfg.text_config.vocab_size == len(tok)
    assert cfg.vision_config.initializer_range >= 1e-3  # not the 1e-10 default
    assert cfg.vision_config.image_size == 256
    assert num_image_tokens_for(cfg) == (256 // 16 // 4) ** 2 == cfg.image_seq_length
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.pad_token_id is not None
    assert processor.image_token_id == cfg.image_token_index


def test_tiny_config_other_sizes():
    for size in (128, 384, 512):
        cfg = tiny.tiny_config(image_size=size)
        assert num_image_tokens_for(cfg) == (size // 16 // 4) ** 2 == cfg.image_seq_length
    with pytest.raises(ValueError):
        tiny.tiny_config(image_size=200)
    with pytest.raises(TypeError):
        tiny.tiny_config(not_a_setting=1)


def _example(processor, image, text):
    tok = processor.tokenizer
    enc = processor(image, return_tensors="pt")
    prompt = enc["input_ids"][0]
    target = tok(text, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    ids = torch.cat([prompt, torch.tensor(target)])
    labels = ids.clone()
    labels[: len(prompt)] = -100
    return enc, ids, labels


def test_image_tokens_in_prompt(loaded):
    model, processor = loaded
    wide = Image.new("RGB", (1200, 60), "white")
    enc = processor([wide, wide], return_tensors="pt")
    assert enc["pixel_values"].shape == (2, 3, 256, 256)  # the wide line is squashed to the square
    n = (enc["input_ids"] == model.config.image_token_index).sum(dim=1)
    assert n.tolist() == [(256 // 16 // 4) ** 2] * 2


def test_forward_with_labels_finite_loss(loaded):
    model, processor = loaded
    img = Image.new("RGB", (400, 50), "white")
    enc, ids, labels = _example(processor, img, "नमस्ते दुनिया।")
    with torch.no_grad():
        out = model(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None],
                    pixel_values=enc["pixel_values"], labels=labels[None])
    assert out.loss is not None and math.isfinite(out.loss.item())
    assert out.logits.shape[-1] == model.config.text_config.vocab_size
    # a random vision tower must not output ~0 (the 1e-10 initializer_range pitfall)
    feats = model.get_image_features(enc["pixel_values"]).pooler_output
    assert feats.shape[1] == num_image_tokens_for(model.config)
    assert feats.std().item() > 1e-3


def test_generate_runs(loaded):
    model, processor = loaded
    enc = processor(Image.new("RGB", (400, 50), "white"), return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= enc["input_ids"].shape[1] + 3


def test_build_tiny_model_returns_path_and_seed_is_deterministic(tmp_path, ckpt):
    from safetensors.torch import load_file

    p = tiny.build_tiny_model(tmp_path / "again", image_size=256, seed=0)
    assert p == tmp_path / "again" and (p / "model.safetensors").is_file()
    a, b = load_file(p / "model.safetensors"), load_file(ckpt / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_recipes_are_valid_trainer_and_lora_settings(tmp_path, ckpt):
    from peft import LoraConfig, get_peft_model
    from transformers import GotOcr2ForConditionalGeneration, Seq2SeqTrainingArguments

    for recipe in (tiny.TINY_RECIPE, tiny.TINY_LORA_RECIPE):
        args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], **recipe)
        assert args.max_steps == recipe["max_steps"]
    model = GotOcr2ForConditionalGeneration.from_pretrained(ckpt)
    peft_model = get_peft_model(model, LoraConfig(**tiny.TINY_LORA))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    # every LM projection of every layer got an adapter
    n_layers = tiny.TINY_DEFAULTS["text_num_hidden_layers"]
    assert len(trainable) == n_layers * 7 * 2


def test_cli_refuses_a_folder_that_holds_files(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")  # someone's own checkpoint
    with pytest.raises(SystemExit) as exit_info:
        tiny.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "already holds files" in capsys.readouterr().err
    assert (tmp_path / "config.json").read_text() == "{}"
