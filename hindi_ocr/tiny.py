"""A tiny, random-initialised GOT-OCR2 checkpoint (model + processor) for offline tests.

``python -m hindi_ocr.tiny OUT_DIR [--image_size 256] [--seed 0]`` writes, in a few seconds and without any
network access, a directory that ``GotOcr2ForConditionalGeneration.from_pretrained`` and
``AutoProcessor.from_pretrained`` load back:

* a small ``GotOcr2Config`` (see :data:`TINY_DEFAULTS`) whose vision tower is initialised with a usable
  ``initializer_range`` (the library default, 1e-10, makes a random vision tower output ~0);
* a byte-level BPE tokenizer trained here on Hindi words from ``wordfreq`` plus digits, punctuation and Latin
  letters, carrying GOT's special tokens (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, ``<ref>`` ...
  ``<imgpad>``); being byte-level it round-trips any text exactly (ZWJ/ZWNJ, nukta, danda, Latin, digits);
* a ``GotOcr2Processor`` with the torchvision-free ``GotOcr2ImageProcessorPil`` at ``image_size`` x
  ``image_size`` (AutoProcessor loads the Pil one back when torchvision is absent, the fast one otherwise).

The processor's ``num_image_tokens`` (a class attribute, default 256) is *not* kept by ``save_pretrained``:
set it from the model config with ``hindi_ocr.examples.num_image_tokens_for`` (or load both with :func:`load_tiny`).

The defaults are the ones with which a from-scratch model learns to read a handful (8-16) of rendered lines in
75-100 optimiser steps on CPU with :data:`TINY_RECIPE` (full fine-tuning), or with LoRA on the language model
(:data:`TINY_LORA`, :data:`TINY_LORA_RECIPE`) on top of a briefly trained base. The same shape, with the recipe in
``configs/smoke.yaml`` (lr 1e-3, batch 16, fold, 3000 steps on clean lines of the 50 commonest words), reads lines it
never trained on (the README's quick start); wider, deeper or patch-8 variants cost 3-4x per step without learning
faster per step (BENCHMARKS.md, "Learning curve"), so there is no larger preset.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path

from .examples import num_image_tokens_for

# The pre-tokenizer split: Qwen/GOT's pattern, except that combining marks (\p{M}: matras, virama, nukta,
# anusvara, ...) stay inside words. With GOT's own pattern every Devanagari word is cut at each mark.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}\p{M}]?[\p{L}\p{M}\u200c\u200d]+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}\p{M}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# GOT-OCR2's special tokens (its converter also adds <|extra_0|> ... <|extra_204|>; see ``n_extra_tokens``).
GOT_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
GOT_TAG_TOKENS = ["<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<img>", "</img>", "<imgpad>"]

# Text the prompt is built from (GotOcr2Processor.prepare_inputs_layout), so that the prompt is a few tokens.
_PROMPT_TEXT = [
    "system\nYou should follow the instructions carefully and explain your answers in detail.",
    "user\n",
    "assistant\n",
    " OCR: ",
    " OCR with format: ",
    " OCR across multi pages: ",
    " OCR upon the patch reference: ",
    "[red] [green] [blue] [0, 0, 1000, 1000]",
]

TINY_DEFAULTS: dict = {
    # input
    "image_size": 256,
    "patch_size": 16,
    # vision tower (SAM-style ViT)
    "vision_hidden_size": 64,
    "vision_num_hidden_layers": 2,
    "vision_num_attention_heads": 2,
    "vision_mlp_dim": 128,
    "vision_output_channels": 32,
    "vision_window_size": 8,
    "vision_global_attn_indexes": (1,),
    "vision_initializer_range": 0.02,
    # language model (Qwen2)
    "text_hidden_size": 128,
    "text_num_hidden_layers": 2,
    "text_num_attention_heads": 4,
    "text_num_key_value_heads": 2,
    "text_intermediate_size": 256,
    "text_max_position_embeddings": 1024,
    # tokenizer
    "vocab_size": 900,
    "n_hindi_words": 5000,
    "n_extra_tokens": 0,
}

# Training recipe (HF Trainer / Seq2SeqTrainingArguments terms) with which the tiny model above, from scratch,
# learns to read N rendered lines (N = 8-16, 2-5 words, black on white, canvas cropped tightly to the text and
# squashed to the square by the default image processor): greedy train CER 0.0 at step 75 (16 lines: 3 of 4
# seeds, the 4th at step 100; 8 lines: 2 of 2 seeds), staying 0.0 to step 250. ~0.2 s/step for 16 lines
# (prompt ~104 tokens incl. 16 image tokens, target ~12) on 2 cores; 8 lines take about half.
# At this lr it collapses (one output for every image, image ignored) when the text fills only a thin band of
# the square (letterbox, or a wide fixed canvas squashed): crop lines tightly and squash. lr 3e-4 is slower
# (CER <= 0.05 at step 125) but also learns those layouts in ~225-250 steps.
TINY_RECIPE: dict = {
    "learning_rate": 1e-3,
    "lr_scheduler_type": "constant_with_warmup",
    "warmup_steps": 20,
    "adam_beta1": 0.9,
    "adam_beta2": 0.98,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "per_device_train_batch_size": 16,  # = number of lines: the whole set each step
    "gradient_accumulation_steps": 1,
    "max_steps": 150,
}

# LoRA on top of a briefly trained base (the base tested: TINY_RECIPE with learning_rate 3e-4 for 50 steps ->
# train CER 0.85, 3 distinct outputs). Adapters on the language model's projections suffice; nothing else is
# trained (adding vision qkv/proj/lin1/lin2 adapters or modules_to_save=["multi_modal_projector"] did not
# speed it up). Greedy train CER 0.0 at step 50 on the base's lines, 75-100 on new lines (lr 1e-3: 75 and
# 125-150; 3e-4: 125). The loss stays high (~3.5-4 vs ~0.01 for full FT): the logit scale is set by the frozen
# tied embeddings and final norm, so judge LoRA by CER / greedy output, not by a loss threshold.
TINY_LORA: dict = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
    "modules_to_save": None,
}
TINY_LORA_RECIPE: dict = {**TINY_RECIPE, "learning_rate": 3e-3, "max_steps": 150}


def _hindi_corpus(n_words: int) -> list[str]:
    import wordfreq

    words = wordfreq.top_n_list("hi", n_words)
    # weight the commonest words a little (top_n_list gives each word once)
    words = [w for w in words for _ in range(max(1, int(2 ** (wordfreq.zipf_frequency(w, "hi") - 4.5))))]
    lines = [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)]
    # Every Devanagari code point, a few times, so that each becomes one token before any word-piece merge
    # (byte-level BPE covers anything else, e.g. rarer scripts, byte by byte).
    block = " ".join(chr(c) for c in range(0x0900, 0x0980)) + " । ॥ \u200c \u200d ₹"
    lines += [block] * 4
    lines += ["।"] * 20
    return lines


def _basic_corpus() -> list[str]:
    # Many copies, so that BPE merges the prompt: spelt letter by letter it is ~90 tokens, most of each training
    # sequence (GOT's own tokenizer spends ~20 on it).
    lines = list(_PROMPT_TEXT) * 200
    lines.append(string.digits + " " + " ".join(string.digits) + " 10 100 2024 1947 3.14 50%")
    lines.append(" ".join(string.ascii_letters))
    lines.append(" ".join(string.punctuation))
    lines.append("the of and to in is a that for it with as on was be by this are from or")
    return lines


def build_tokenizer(vocab_size: int = 900, n_hindi_words: int = 5000, n_extra_tokens: int = 0):
    """Train a byte-level BPE tokenizer with GOT's special tokens; returns a ``PreTrainedTokenizerFast``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AddedToken, PreTrainedTokenizerFast

    specials = GOT_SPECIAL_TOKENS + [f"<|extra_{i}|>" for i in range(n_extra_tokens)] + GOT_TAG_TOKENS

    tok = Tokenizer(models.BPE())
    tok.normalizer = None  # no normalisation at all: exact round-trip
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = _hindi_corpus(n_hindi_words) + _basic_corpus()
    tok.train_from_iterator(corpus, trainer=trainer)

    added = [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False) for t in specials]
    tok.add_special_tokens(added)

    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=TINY_DEFAULTS["text_max_position_embeddings"],
        model_input_names=["input_ids", "attention_mask"],
    )
    # Registered as special so that decode(skip_special_tokens=True) drops them all.
    extra = [t for t in specials if t != "<|endoftext|>"]
    hf_tok.add_special_tokens({"additional_special_tokens": extra})
    return hf_tok


def tiny_config(image_size: int | None = None, vocab_size: int | None = None,
                image_token_index: int | None = None, pad_token_id: int | None = None, **overrides):
    """The tiny GotOcr2Config; ``overrides`` are keys of :data:`TINY_DEFAULTS`.

    ``vocab_size``/``image_token_index``/``pad_token_id`` default to placeholders when no tokenizer is at hand
    (``build_tiny_model`` fills them from the tokenizer it trains).
    """
    from transformers import GotOcr2Config

    unknown = set(overrides) - set(TINY_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown tiny settings: {sorted(unknown)}")
    d = {**TINY_DEFAULTS, **overrides}
    if image_size is not None:
        d["image_size"] = image_size
    if d["image_size"] % (d["patch_size"] * 4):
        raise ValueError("image_size must be a multiple of 4 * patch_size")
    vocab_size = vocab_size if vocab_size is not None else d["vocab_size"]
    image_token_index = image_token_index if image_token_index is not None else vocab_size - 1
    pad_token_id = pad_token_id if pad_token_id is not None else 0
    side = d["image_size"] // d["patch_size"] // 4

    vision_config = {
        "hidden_size": d["vision_hidden_size"],
        "output_channels": d["vision_output_channels"],
        "num_hidden_layers": d["vision_num_hidden_layers"],
        "num_attention_heads": d["vision_num_attention_heads"],
        "mlp_dim": d["vision_mlp_dim"],
        "image_size": d["image_size"],
        "patch_size": d["patch_size"],
        "window_size": d["vision_window_size"],
        "global_attn_indexes": list(d["vision_global_attn_indexes"]),
        "initializer_range": d["vision_initializer_range"],
    }
    text_config = {
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": d["text_hidden_size"],
        "intermediate_size": d["text_intermediate_size"],
        "num_hidden_layers": d["text_num_hidden_layers"],
        "num_attention_heads": d["text_num_attention_heads"],
        "num_key_value_heads": d["text_num_key_value_heads"],
        "max_position_embeddings": d["text_max_position_embeddings"],
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "pad_token_id": pad_token_id,
        "layer_types": ["full_attention"] * d["text_num_hidden_layers"],
    }
    config = GotOcr2Config(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_index,
        image_seq_length=side * side,
        tie_word_embeddings=True,
    )
    config.pad_token_id = pad_token_id
    return config


def build_tiny_model(out_dir, image_size: int = 256, seed: int = 0, **overrides) -> Path:
    """Write the tiny checkpoint + processor to ``out_dir`` and return it as a Path."""
    import torch
    from transformers import GenerationConfig, GotOcr2ForConditionalGeneration, GotOcr2Processor
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    d = {**TINY_DEFAULTS, **overrides}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(d["vocab_size"], d["n_hindi_words"], d["n_extra_tokens"])
    imgpad = tokenizer.convert_tokens_to_ids("<imgpad>")
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.pad_token_id

    cfg_overrides = {k: v for k, v in overrides.items() if k != "vocab_size"}
    config = tiny_config(image_size=image_size, vocab_size=len(tokenizer), image_token_index=imgpad,
                         pad_token_id=pad, **cfg_overrides)
    config.architectures = ["GotOcr2ForConditionalGeneration"]
    torch.manual_seed(seed)
    model = GotOcr2ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=im_end, pad_token_id=pad, bos_token_id=tokenizer.bos_token_id, do_sample=False,
    )
    model.save_pretrained(out)

    image_processor = GotOcr2ImageProcessorPil(size={"height": image_size, "width": image_size})
    processor = GotOcr2Processor(image_processor=image_processor, tokenizer=tokenizer)
    processor.save_pretrained(out)
    return out


def load_tiny(path, **model_kwargs):
    """Load (model, processor) from ``path`` with the processor's ``num_image_tokens`` set from the config."""
    from transformers import AutoProcessor, GotOcr2ForConditionalGeneration

    model = GotOcr2ForConditionalGeneration.from_pretrained(path, **model_kwargs)
    processor = AutoProcessor.from_pretrained(path)
    processor.num_image_tokens = num_image_tokens_for(model.config)
    return model, processor


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m hindi_ocr.tiny", description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--image_size", type=int, default=TINY_DEFAULTS["image_size"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab_size", type=int, default=TINY_DEFAULTS["vocab_size"])
    p.add_argument("--text_hidden_size", type=int, default=TINY_DEFAULTS["text_hidden_size"])
    p.add_argument("--text_num_hidden_layers", type=int, default=TINY_DEFAULTS["text_num_hidden_layers"])
    p.add_argument("--vision_hidden_size", type=int, default=TINY_DEFAULTS["vision_hidden_size"])
    p.add_argument("--vision_num_hidden_layers", type=int, default=TINY_DEFAULTS["vision_num_hidden_layers"])
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds files")
    a = p.parse_args(argv)
    if Path(a.out_dir).is_dir() and any(Path(a.out_dir).iterdir()) and not a.overwrite:
        p.error(f"{a.out_dir} already holds files; choose an empty folder or pass --overwrite "
                "(files of the same name are replaced)")
    out = build_tiny_model(
        a.out_dir, image_size=a.image_size, seed=a.seed, vocab_size=a.vocab_size,
        text_hidden_size=a.text_hidden_size, text_num_hidden_layers=a.text_num_hidden_layers,
        vision_hidden_size=a.vision_hidden_size, vision_num_hidden_layers=a.vision_num_hidden_layers,
    )
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
