"""Train the shipped tiny Hindi reader from scratch on CPU, in resumable stages.

    python -m hindi_ocr.pretrain OUT_DIR --minutes 100              # stage 1 (a fresh model)
    python -m hindi_ocr.pretrain OUT_DIR --minutes 100 --resume     # stage 2, 3 ...: continue OUT_DIR/last

Why not the Trainer: a from-scratch GOT-OCR2 of this size spends thousands of steps ignoring the image (BENCHMARKS.md,
"Learning curve"): the only gradient into the vision tower comes through the language model's attention. Here a CTC
head on the projected image tokens (read in line order: see :func:`reading_order`) gives the vision tower a direct,
per-character signal from the first step. The head is dropped at save time: what is written is a plain
``GotOcr2ForConditionalGeneration`` with its processor, loaded by transformers without custom code.

Data (all rendered on the fly, never the same image twice): 2-5 word windows (1-5 now and then) of Common Voice
sentences (CC0; the held-out sentences removed, 60% of lines), of Tesseract's training text with digits and
punctuation (Apache-2.0, 10%) and strings of Tesseract's Hindi word list (Apache-2.0, 30%), from ``../shared/corpus``
when it is there, else frequency-drawn wordfreq words; six training font families (the held-out Mukta and Poppins are
never trained on); a curriculum (:func:`clean_share`): clean black-on-white lines at one size until the CTC loss
shows they are read, then more and more lines of random size, contrast, tilt, blur and noise.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .ctc import CtcHead, charset, column_frames, ctc_loss, ctc_of_frames, reading_order  # noqa: F401 (re-exported)
from .examples import OcrExampleBuilder
from .text import normalize_text

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
TRAIN_FAMILIES = "Noto Sans Devanagari,Hind,Baloo 2,Rajdhani,Kalam,Teko"
HELDOUT_FAMILIES = "Mukta,Poppins"
LINE_HEIGHT = 48
READER_SHAPE = {  # hindi_ocr.tiny settings: 256x256 input, patch 8 -> 32x32 patches -> 8x8 = 64 image tokens
    "patch_size": 8,
    "vision_hidden_size": 64,
    "vision_num_hidden_layers": 2,
    "vision_num_attention_heads": 2,
    "vision_mlp_dim": 256,
    "vision_output_channels": 64,
    "vision_window_size": 8,
    "vision_global_attn_indexes": (),
    "text_hidden_size": 192,
    "text_num_hidden_layers": 2,
    "text_num_attention_heads": 6,
    "text_num_key_value_heads": 2,
    "text_intermediate_size": 384,
}


# ----------------------------------------------------------------------------------------------------------- text
def heldout_texts(n: int = 200, seed: int = 0, min_words: int = 2, max_words: int = 4) -> list[str]:
    """Windows of distinct Common Voice sentences (Devanagari words only): the issue-8 held-out text. Without
    ``../shared/corpus`` (an installed package): wordfreq lines of the same lengths, still read in held-out faces."""
    from .render import generate_lines, read_text_lines

    if not CORPUS.is_dir():
        return generate_lines(n, seed=seed + 5, min_words=min_words, max_words=max_words)
    rng = np.random.default_rng(seed)
    sentences = read_text_lines(CORPUS / "hi_commonvoice_sentences.txt")
    texts = []
    for i in rng.permutation(len(sentences)):
        words = [w for w in (w.strip("\"'“”‘’()") for w in sentences[i].split()) if w and _devanagari(w)]
        if len(words) < min_words:
            continue
        count = int(rng.integers(min_words, max_words + 1))
        start = int(rng.integers(0, max(1, len(words) - count + 1)))
        texts.append(" ".join(words[start: start + count]))
        if len(texts) == n:
            return texts
    raise ValueError(f"only {len(texts)} usable sentences")


def _devanagari(word: str) -> bool:
    return all("\u0900" <= c <= "\u097f" or c in "?,!.-" for c in word)


def training_sources(exclude: list[str]) -> dict[str, list[list[str]]]:
    """Text to draw line windows from, by kind: real sentences (Common Voice, the held-out ones removed), word
    sequences with digits and punctuation (Tesseract's training text), and single dictionary words to string
    together (Tesseract's word list). Not ``hin_singles_text``: its items are lone conjunct clusters (छ्ठी, श्त्रं),
    and at 9 in 10 of the drawn lines they taught the first stage to read syllable drills, not sentences."""
    from .render import generate_lines, read_text_lines

    def words_of(line):
        words = [w.strip("\"'“”‘’()") for w in line.split()]
        return [w for w in words if w and "\u200c" not in w and "\u200d" not in w and not w.endswith("\u094d")]

    if not CORPUS.is_dir():
        return {"sentences": [line.split() for line in generate_lines(20000, seed=1, min_words=4, max_words=10)]}
    sources = {}
    for kind, name in (("sentences", "hi_commonvoice_sentences.txt"), ("mixed", "hin_training_text.txt"),
                       ("words", "hin_wordlist.txt")):
        lines = [line for line in read_text_lines(CORPUS / name) if not any(text in line for text in exclude)]
        sources[kind] = [w for w in map(words_of, lines) if w]
    return sources


SOURCE_SHARES = {"sentences": 0.6, "mixed": 0.1, "words": 0.3}


def draw_text(sources, rng) -> str:
    """A 2-5 word window (1-5 now and then): of a sentence or mixed line, or of random dictionary words."""
    kinds = [k for k in SOURCE_SHARES if k in sources]
    shares = np.array([SOURCE_SHARES[k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=shares / shares.sum()))]
    count = int(rng.integers(1, 6)) if rng.random() < 0.1 else int(rng.integers(2, 6))
    if kind == "words":
        words = [sources[kind][int(rng.integers(len(sources[kind])))][0] for _ in range(count)]
        return normalize_text(" ".join(words))
    words = sources[kind][int(rng.integers(len(sources[kind])))]
    start = int(rng.integers(0, max(1, len(words) - count + 1)))
    return normalize_text(" ".join(words[start: start + count]))


def clean_share(step: int, ramp: int, ramp_start: int | None) -> float:
    """Share of clean lines (one face size, black on white, no noise): all of them until the CTC loss shows the
    model reads clean lines (``ramp_start``, the step it first did), then falling to 0.3 over ``ramp`` steps.
    A fixed schedule moved to varied lines before anything was read (stage 1 of the first run)."""
    if ramp_start is None:
        return 1.0
    return max(0.3, 1.0 - 0.7 * (step - ramp_start) / max(1, ramp))


class Lines(torch.utils.data.IterableDataset):
    """An endless stream of rendered lines in a random training face; the curriculum state comes from the trainer
    through ``ramp_start`` (a shared value: the loader's worker reads it per line)."""

    def __init__(self, sources, fonts, seed: int, start_step: int, ramp: int, batch_size: int, ramp_start):
        self.sources, self.fonts, self.seed = sources, fonts, seed
        self.start_step, self.ramp, self.batch_size = start_step, ramp, batch_size
        self.ramp_start = ramp_start

    def __iter__(self):
        from .render import render_sample

        rng = np.random.default_rng([self.seed, self.start_step])
        n = 0
        while True:
            text = draw_text(self.sources, rng)
            if not text or len(text) > 48:
                continue
            step = self.start_step + n // self.batch_size
            start = self.ramp_start.value
            clean = rng.random() < clean_share(step, self.ramp, None if start < 0 else start)
            size = int(rng.integers(20, 29)) if clean else 0
            image, _ = render_sample(text, rng, self.fonts, LINE_HEIGHT, font_size=size)
            n += 1
            yield image.convert("RGB"), text


# ------------------------------------------------------------------------------------------------------- running
def evaluate(model, builder, images, texts, batch_size: int = 50) -> tuple[float, list[str]]:
    from .inference import read_images
    from .scoring import score

    model.eval()
    preds = []
    for i in range(0, len(images), batch_size):
        preds += read_images(model, builder, images[i: i + batch_size])
    model.train()
    return score(preds, texts)["cer"], preds


def heldout_images(texts, seed: int = 0):
    from .render import devanagari_fonts, render_sample

    fonts = devanagari_fonts(HELDOUT_FAMILIES)
    return [render_sample(t, np.random.default_rng([seed, 7, i]), fonts, LINE_HEIGHT)[0].convert("RGB")
            for i, t in enumerate(texts)]


def write_heldout_folder(out, n: int = 200, seed: int = 0) -> list[str]:
    """The held-out lines as a seed-layout folder (data.csv + images), for infer.py, Tesseract and tests."""
    import csv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=False)
    texts = heldout_texts(n, seed)
    with open(out / "data.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image_file", "text"])
        for i, (image, text) in enumerate(zip(heldout_images(texts, seed), texts)):
            image.save(out / f"{i:03d}.png")
            writer.writerow([f"{i:03d}.png", text])
    return texts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m hindi_ocr.pretrain", description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--minutes", type=float, default=100.0, help="wall-clock budget of this stage")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last (model, CTC head, optimizer)")
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--decay_minutes", type=float, default=15.0,
                   help="the stage's last minutes, over which the learning rate falls linearly to a tenth")
    p.add_argument("--ctc_weight", type=float, default=1.0)
    p.add_argument("--ctc_on", choices=("tokens", "columns"), default="tokens",
                   help="tokens: the 64 projected image tokens in reading order; columns: the vision tower's "
                        "32x32 grid read column by column along the folded line (a CRNN's frames)")
    p.add_argument("--ramp_steps", type=int, default=3000, help="steps over which clean lines fall to 30%%")
    p.add_argument("--ramp_at_ctc", type=float, default=0.7,
                   help="start varying the lines once the CTC loss (200-step mean, per character) is below this")
    p.add_argument("--ramp_by", type=int, default=4000, help="... or at this step at the latest")
    p.add_argument("--eval_every", type=int, default=500)
    p.add_argument("--heldout_lines", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a READER_SHAPE key")
    args = p.parse_args(argv)
    from .render import devanagari_fonts
    from .tiny import build_tiny_model, load_tiny
    from .modeling import configure_generation

    out = Path(args.out_dir)
    last = out / "last"
    shape = dict(READER_SHAPE)
    for item in args.set:
        key, _, value = item.partition("=")
        shape[key] = json.loads(value)
    if args.resume:
        model, processor = load_tiny(last)
        state = torch.load(last / "training_state.pt", weights_only=False, map_location="cpu")
    else:
        init = build_tiny_model(out / "init", image_size=256, seed=args.seed, **shape)
        model, processor = load_tiny(init)
        state = None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # a GPU reruns a stage in minutes
    model.to(device)
    configure_generation(model, processor, max_new_tokens=64)
    builder = OcrExampleBuilder(processor, line_layout="fold", max_target_tokens=64)
    texts = heldout_texts(args.heldout_lines, args.seed)
    images = heldout_images(texts, args.seed)
    sources = training_sources(texts)
    chars = state["chars"] if state else charset(sources)
    index = {c: i + 1 for i, c in enumerate(chars)}
    ctc_on = state["args"].get("ctc_on", "tokens") if state else args.ctc_on
    width = (model.config.text_config.hidden_size if ctc_on == "tokens"
             else model.config.vision_config.output_channels)
    head = CtcHead(width, len(chars)).to(device)
    params = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, betas=(0.9, 0.98), weight_decay=0.0)
    step = 0
    curve = []
    if state:
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        step, curve = state["step"], state["curve"]
    captured = {}
    model.model.multi_modal_projector.register_forward_hook(lambda m, i, o: captured.__setitem__("f", o))
    model.model.vision_tower.neck.register_forward_hook(lambda m, i, o: captured.__setitem__("grid", o))
    fonts = devanagari_fonts(TRAIN_FAMILIES)
    ramp_start = torch.multiprocessing.Value("i", state.get("ramp_start", -1) if state else -1)
    stream = Lines(sources, fonts, args.seed, step, args.ramp_steps, args.batch_size, ramp_start)
    def collate(rows):  # in the loader's worker: the processor's resizing is a quarter of a step in the main process
        images, texts = [r[0] for r in rows], [r[1] for r in rows]
        return images, texts, builder.training_inputs(images, texts)

    loader = torch.utils.data.DataLoader(stream, batch_size=args.batch_size, num_workers=1, collate_fn=collate)
    side = int(math.isqrt(processor.num_image_tokens))
    start, losses = time.perf_counter(), []
    model.train()
    print(f"stage from step {step}, {sum(x.numel() for x in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    for line_images, line_texts, batch in loader:
        left = args.minutes - (time.perf_counter() - start) / 60
        decay = 0.1 + 0.9 * min(1.0, max(0.0, left) / args.decay_minutes) if args.decay_minutes else 1.0
        for group in optimizer.param_groups:
            group["lr"] = args.learning_rate * min(1.0, (step + 1) / 100) * decay
        lm = model(**{k: v.to(device) for k, v in batch.items()}).loss
        if ctc_on == "tokens":
            aux = ctc_loss(head, captured["f"], [reading_order(im, side) for im in line_images], line_texts, index)
        else:
            aux = ctc_of_frames(head, *column_frames(captured["grid"], line_images), line_texts, index)
        loss = lm + args.ctc_weight * aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        losses.append((lm.item(), aux.item()))
        if ramp_start.value < 0 and (step >= args.ramp_by or (
                len(losses) >= 200 and np.mean([x[1] for x in losses[-200:]]) < args.ramp_at_ctc)):
            ramp_start.value = step
            ctc_now = np.mean([x[1] for x in losses[-200:]])
            why = "below --ramp_at_ctc" if ctc_now < args.ramp_at_ctc else "--ramp_by reached"
            print(f"step {step}: varied lines from now on (CTC {ctc_now:.3f}, {why})", flush=True)
        elapsed = time.perf_counter() - start
        done = elapsed > args.minutes * 60
        if step % 50 == 0:
            lm_mean, ctc_mean = np.mean(losses[-50:], axis=0)
            print(f"step {step} lm {lm_mean:.3f} ctc {ctc_mean:.3f} {elapsed / 60:.1f} min "
                  f"clean {clean_share(step, args.ramp_steps, None if ramp_start.value < 0 else ramp_start.value):.2f}", flush=True)
        if step % args.eval_every == 0 or done:
            cer, preds = evaluate(model, builder, images, texts)
            curve.append({"step": step, "cer": cer, "lm_loss": float(np.mean([x[0] for x in losses[-50:]]))})
            print(f"EVAL step {step} held-out CER {cer:.4f} | {texts[0]} -> {preds[0]} | {texts[1]} -> {preds[1]}",
                  flush=True)
            model.save_pretrained(last)
            processor.save_pretrained(last)
            torch.save({"head": head.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "curve": curve, "chars": chars, "args": vars(args),
                        "ramp_start": ramp_start.value}, last / "training_state.pt")
            (out / "curve.json").write_text(json.dumps(curve, indent=1))
        if done:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
