#!/usr/bin/env python
"""How fast does the reader's vision tower learn with the CTC signal? Fit 16 fixed held-out lines with
``hindi_ocr.pretrain``'s shape, CTC head and reading order, and print both losses every 20 steps.

    python bench/ctc_probe.py --learning_rate 1e-3 --lm_weight 1     # joint, as pretrain trains
    python bench/ctc_probe.py --learning_rate 3e-3 --lm_weight 0     # CTC alone
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import BENCH_DIR  # noqa: E402  (also sets the offline environment)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--lm_weight", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=120)
    args = p.parse_args(argv)
    from hindi_ocr.examples import OcrExampleBuilder
    from hindi_ocr.pretrain import READER_SHAPE, CtcHead, ctc_loss, heldout_images, heldout_texts, reading_order
    from hindi_ocr.tiny import build_tiny_model, load_tiny

    torch.manual_seed(0)
    model, processor = load_tiny(build_tiny_model(BENCH_DIR / "ctc-probe-init", image_size=256, **READER_SHAPE))
    builder = OcrExampleBuilder(processor, line_layout="fold", max_target_tokens=64)
    texts = heldout_texts(16, seed=5)
    images = heldout_images(texts, seed=5)
    index = {c: i + 1 for i, c in enumerate(sorted({c for t in texts for c in t}))}
    head = CtcHead(model.config.text_config.hidden_size, len(index))
    captured = {}
    model.model.multi_modal_projector.register_forward_hook(lambda m, i, o: captured.__setitem__("f", o))
    params = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, betas=(0.9, 0.98), weight_decay=0.0)
    batch = builder.training_inputs(images, texts)
    orders = [reading_order(image, 8) for image in images]
    print("| step | LM loss | CTC loss |\n|---|---|---|")
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.learning_rate * min(1.0, step / 20)
        lm = model(**batch).loss
        aux = ctc_loss(head, captured["f"], orders, texts, index)
        optimizer.zero_grad()
        (args.lm_weight * lm + aux).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % 20 == 0:
            print(f"| {step} | {lm.item():.3f} | {aux.item():.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
