#!/usr/bin/env python
"""Full-size GOT-OCR2 (``GotOcr2Config()`` defaults, ~560M parameters, random weights) on this CPU, fp32:
one LoRA training step through the real Trainer path and one 30-token generation, with and without gradient
checkpointing; then what a GPU run would need in memory.

    python bench/full_size.py                 # writes the random checkpoint once to $HINDI_OCR_BENCH_DIR/full-size
    python bench/full_size.py --pages 8       # one LoRA step on a page of 8 lines against 8 single-line steps

The checkpoint is the library's default config with a vision ``initializer_range`` of 0.02 (the default 1e-10 makes
the vision tower output ~0) and ``image_token_index`` set to the ``<imgpad>`` id of the project's tiny tokenizer
(hindi_ocr.tiny.build_tokenizer); the config's vocabulary (151,860) is kept: the model only needs ids below it.
Each configuration runs in its own child process; RSS is sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

NEW_TOKENS = 30


def full_size_model() -> Path:
    out = c.BENCH_DIR / "full-size"
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out
    import torch
    from transformers import GenerationConfig, GotOcr2Config, GotOcr2ForConditionalGeneration, GotOcr2Processor
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    from hindi_ocr.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    config = GotOcr2Config()
    config.vision_config.initializer_range = 0.02
    config.image_token_index = config.image_token_id = tokenizer.convert_tokens_to_ids("<imgpad>")
    config.architectures = ["GotOcr2ForConditionalGeneration"]
    torch.manual_seed(0)
    model = GotOcr2ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(out)
    side = config.vision_config.image_size
    GotOcr2Processor(image_processor=GotOcr2ImageProcessorPil(size={"height": side, "width": side}),
                     tokenizer=tokenizer).save_pretrained(out)
    return out


def child(gc: bool, data: Path, model_dir: Path) -> dict:
    import os

    import psutil
    import torch
    import transformers

    from hindi_ocr.examples import OcrExampleBuilder
    from hindi_ocr.arguments import DataArguments, LoraArguments, ModelArguments, OcrTrainingArguments
    from hindi_ocr.training import build_model_and_processor, build_trainer, load_datasets

    transformers.utils.logging.set_verbosity_error()
    me = psutil.Process(os.getpid())
    rss0 = me.memory_info().rss
    data_args = DataArguments(data_dir=str(data), dataset_options="validation_ratio=0,test_ratio=0")
    args = OcrTrainingArguments(output_dir=str(c.BENCH_DIR / "runs" / "full-size"), overwrite_output_dir=True,
                                per_device_train_batch_size=1, gradient_accumulation_steps=1, max_steps=1,
                                gradient_checkpointing=gc, eval_strategy="no", save_strategy="no", report_to="none",
                                disable_tqdm=True)
    start = time.perf_counter()
    model, processor = build_model_and_processor(ModelArguments(model_name_or_path=str(model_dir)), LoraArguments(),
                                                 args, max_new_tokens=NEW_TOKENS)
    load_s = time.perf_counter() - start
    trainer = build_trainer(model, processor, load_datasets(data_args), data_args, args)
    rss_loaded = me.memory_info().rss
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    base = model.get_base_model()
    vision = sum(p.numel() for p in base.model.vision_tower.parameters())
    with c.TreeRss(os.getpid(), 0.05) as step_rss:
        start = time.perf_counter()
        trainer.train()
        step_s = time.perf_counter() - start

    builder = OcrExampleBuilder(processor)
    image = trainer.train_dataset[0]["image"]
    model.eval()
    model.generation_config.min_new_tokens = NEW_TOKENS
    model.generation_config.max_new_tokens = NEW_TOKENS
    inputs = builder.prompt_inputs([image])
    with c.TreeRss(os.getpid(), 0.05) as gen_rss, torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(**inputs)
        gen_s = time.perf_counter() - start
    return {"gc": gc, "load_s": load_s, "step_s": step_s, "gen_s": gen_s, "new_tokens": out.shape[1] -
            inputs["input_ids"].shape[1], "rss_start": rss0, "rss_loaded": rss_loaded, "step_peak": step_rss.peak,
            "gen_peak": gen_rss.peak, "params": total, "trainable": trainable, "vision_params": vision,
            "prompt_tokens": inputs["input_ids"].shape[1], "threads": torch.get_num_threads()}


def page_child(lines_per_page: int, data: Path, model_dir: Path) -> dict:
    """Training steps through the real Trainer path, batch 1 x 1: ``lines_per_page`` 1 runs one step per line of the
    folder, N > 1 one step on one page of all of them (the frozen encoder's features: computed once per image)."""
    import os

    import transformers

    from hindi_ocr.arguments import DataArguments, LoraArguments, ModelArguments, OcrTrainingArguments
    from hindi_ocr.page_training import max_new_tokens
    from hindi_ocr.training import build_model_and_processor, build_trainer, load_datasets

    transformers.utils.logging.set_verbosity_error()
    data_args = DataArguments(data_dir=str(data), dataset_options="validation_ratio=0,test_ratio=0",
                              lines_per_page=lines_per_page)
    lines = len(load_datasets(data_args)["train"])
    steps = 1 if lines_per_page > 1 else lines
    args = OcrTrainingArguments(output_dir=str(c.BENCH_DIR / "runs" / f"full-size-pages-{lines_per_page}"),
                                overwrite_output_dir=True, per_device_train_batch_size=1, gradient_accumulation_steps=1,
                                max_steps=steps, eval_strategy="no", save_strategy="no", report_to="none",
                                disable_tqdm=True)
    model, processor = build_model_and_processor(ModelArguments(model_name_or_path=str(model_dir)), LoraArguments(),
                                                 args, max_new_tokens=max_new_tokens(data_args))
    trainer = build_trainer(model, processor, load_datasets(data_args), data_args, args)
    if lines_per_page > 1:  # all the lines on one page: no short training page for this measurement
        from hindi_ocr.pages import PageDataset

        trainer.train_dataset = PageDataset(trainer.train_dataset.lines, lines_per_page)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    with c.TreeRss(os.getpid(), 0.05) as rss:
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return {"lines_per_page": lines_per_page, "steps": steps, "lines": trainer.lines_trained, "seconds": seconds,
            "peak": rss.peak, "tokens": int(batch["input_ids"].shape[1]),
            "target_tokens": int((batch["labels"] != -100).sum())}


def page_report(results: list[dict], threads: int) -> None:
    print(f"# full-size GOT-OCR2 (random weights), fp32, CPU, 1024x1024, LoRA r8, batch 1, through the Trainer; "
          f"torch threads: {threads}")
    print(f"# {c.machine()}")
    rows = []
    for r in results:
        label = "one line per image" if r["lines_per_page"] == 1 else f"one page of {r['lines_per_page']} lines"
        rows.append([label, r["steps"], r["lines"], r["tokens"], f"{r['seconds']:.0f}",
                     f"{r['seconds'] / r['lines']:.1f}", c.mib(r["peak"])])
    lines, page = results[0], results[-1]
    rows.append(["ratio lines / page", "", "", "", "", f"{(lines['seconds'] / lines['lines']) / (page['seconds'] / page['lines']):.1f}x",
                 f"{page['peak'] / lines['peak']:.2f}"])
    print(c.table(["training", "steps", "lines", "sequence tokens (last step)", "train s", "s per line",
                   "peak RSS in training MiB"], rows))


def gib(n: float) -> str:
    return f"{n / 2**30:.1f}"


def gpu_estimate(r: dict) -> list[list]:
    """Weights + gradients + AdamW states + activations, per setting. Activations: the peak RSS of the fp32 batch-1 step
    less the process before loading and the fp32 weights (measured here; the frozen encoder runs without autograd,
    so this is mostly the vision tower's transient attention), x batch, /2 for bf16."""
    params, lora = r["params"], r["trainable"]
    act_fp32_b1 = max(0, r["step_peak_nogc"] - r["rss_start"] - params * 4)
    act_fp32_b1_gc = max(0, r["step_peak_gc"] - r["rss_start"] - params * 4)
    # GOT's vision tower: 4 global-attention layers, 12 heads, 4096 tokens; each keeps its attention scores and
    # probabilities for backward, in fp32 whatever the dtype (its softmax runs in fp32). Checkpointed: one layer's.
    vision_attention = 4 * 12 * 4096 * 4096 * 4 * 2
    rows = []
    for dtype, width in (("bf16", 2), ("fp32", 4)):
        for batch in (1, 4):
            for what, trainable in (("LoRA r8 (default)", lora), ("full fine-tuning", params)):
                weights = params * width
                grads = trainable * (4 if what.startswith("LoRA") else width)  # peft keeps adapters in fp32
                optim = trainable * 8 + (trainable * 4 if width == 2 and not what.startswith("LoRA") else 0)
                for gc, act1 in (("off", act_fp32_b1), ("on", act_fp32_b1_gc)):
                    act = act1 * batch * width / 4
                    if not what.startswith("LoRA"):  # a trained vision tower keeps its activations for backward:
                        act += vision_attention * batch / (4 if gc == "on" else 1)  # the global-attention maps
                    rows.append([dtype, batch, what, gc, gib(weights), gib(grads), gib(optim), gib(act),
                                 gib(weights + grads + optim + act)])
    # T4 / P100 (no bf16): fp32 weights, --fp16 autocast. Autograd keeps the fp16 copy of each language-model weight
    # for backward (counted as a full fp16 copy of the model); activations as in the 16-bit rows.
    for batch in (1, 2, 4):
        for gc, act1 in (("off", act_fp32_b1), ("on", act_fp32_b1_gc)):
            weights, act = params * 4 + params * 2, act1 * batch / 2
            rows.append(["fp32 + fp16 autocast", batch, "LoRA r8 (default)", gc, gib(weights), gib(lora * 4),
                         gib(lora * 8), gib(act), gib(weights + lora * 12 + act)])
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", choices=["gc", "nogc"])
    p.add_argument("--pages", type=int, help="compare one step on a page of N lines with N single-line steps")
    p.add_argument("--page_child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report", help="reprint the tables from a saved results JSON instead of running")
    args = p.parse_args(argv)
    data = c.line_folder(4, seed=4)
    if args.page_child:
        import torch

        torch.set_num_threads(args.threads)
        c.emit(page_child(args.page_child, c.line_folder(args.pages, seed=4), full_size_model()))
        return 0
    if args.pages:
        full_size_model()
        results = []
        for n in (1, args.pages):
            run = c.run_measured([sys.executable, __file__, "--page_child", str(n), "--pages", str(args.pages),
                                  "--threads", str(args.threads)], env={"OMP_NUM_THREADS": str(args.threads)})
            got = c.last_json_line(run["output"])
            if got is None:
                raise SystemExit(f"child {n} failed ({run['returncode']}):\n{run['output'][-3000:]}")
            results.append(got)
            print(f"[bench] {json.dumps(got)}", file=sys.stderr, flush=True)
        page_report(results, args.threads)
        return 0
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        c.emit(child(args.child == "gc", data, full_size_model()))
        return 0

    if args.report:
        saved = json.loads(Path(args.report).read_text())
        report(saved["results"], saved["build_s"], saved["threads"])
        return 0
    start = time.perf_counter()
    full_size_model()  # written once, before the children time anything
    build_s = time.perf_counter() - start
    results = {}
    for mode in ("nogc", "gc"):
        run = c.run_measured([sys.executable, __file__, "--child", mode, "--threads", str(args.threads)],
                             env={"OMP_NUM_THREADS": str(args.threads)})
        got = c.last_json_line(run["output"])
        if got is None:
            raise SystemExit(f"child {mode} failed ({run['returncode']}):\n{run['output'][-3000:]}")
        got["tree_peak"] = run["peak_rss"]
        results[mode] = got
        print(f"[bench] {mode}: {json.dumps(got)}", file=sys.stderr, flush=True)
    saved = c.BENCH_DIR / "full_size.json"
    saved.write_text(json.dumps({"results": results, "build_s": build_s, "threads": args.threads}))
    print(f"[bench] raw results: {saved} (reprint with --report {saved})", file=sys.stderr)
    report(results, build_s, args.threads)
    return 0


def report(results: dict, build_s: float, threads: int) -> None:
    r = results["nogc"]
    print(f"# full-size GOT-OCR2 (GotOcr2Config() defaults, random weights), fp32, CPU, 1024x1024 input, "
          f"{r['prompt_tokens']} prompt tokens; {r['params'] / 1e6:.0f}M parameters ({r['vision_params'] / 1e6:.0f}M "
          f"vision), LoRA r8 trains {r['trainable'] / 1e6:.2f}M")
    print(f"# {c.machine()}; torch threads: {threads}; random checkpoint written in {build_s:.0f} s (once)")
    rows = []
    for mode, label in (("nogc", "off"), ("gc", "on")):
        got = results[mode]
        rows.append([label, f"{got['load_s']:.0f}", f"{got['step_s']:.0f}", c.mib(got["rss_loaded"]),
                     c.mib(got["step_peak"]), f"{got['gen_s']:.0f}", got["new_tokens"], c.mib(got["gen_peak"]),
                     c.mib(got["tree_peak"])])
    print(c.table(["grad ckpt", "load s", "1 LoRA step s (batch 1)", "RSS after load MiB (weights mmapped)",
                   "peak in step MiB",
                   f"generate {NEW_TOKENS} tok s", "tokens", "peak in generate MiB", "process peak MiB"], rows))
    est = {**r, "step_peak_nogc": results["nogc"]["step_peak"], "step_peak_gc": results["gc"]["step_peak"]}
    print()
    print("# GPU memory estimate (GiB): weights + gradients + AdamW (2 fp32 states; fp32 master weights for full bf16) "
          "+ activations (from the measured fp32 batch-1 step, scaled by batch and dtype; not counting the CUDA "
          "context, ~0.5-1 GiB, or allocator slack)")
    print(c.table(["dtype", "batch", "training", "grad ckpt", "weights", "grads", "optimizer", "activations",
                   "total"], gpu_estimate(est)))


if __name__ == "__main__":
    raise SystemExit(main())
