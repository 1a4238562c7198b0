#!/usr/bin/env python
"""Break core behaviour on purpose and see which tests notice: a small mutation run for occasional use.

    python bench/mutations.py                  # the quick breaks (a few minutes on 2 cores)
    python bench/mutations.py --all            # also the ones that need a 2-process run (a few more minutes)
    python bench/mutations.py --only merge     # breaks whose name contains "merge" (repeatable)
    python bench/mutations.py --list

Each break is one textual edit of one file, applied to a fresh copy of the tree (tracked and untracked files, not
ignored ones) in a temporary folder; the tests meant to catch it run there (pytest -x). "caught" means a test
failed; "SURVIVED" means the tests passed with the break in place, so the suite would not notice it; "stale" means
the text to break is no longer in the file (the code moved: update the table below). The tree you run it from is
never touched. A break that survives deserves a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # file in the repository
    old: str  # text that must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest node ids expected to catch it
    slow: bool = False  # a 2-process training run: only with --all


CACHE_TEST = "tests/test_accumulation.py::test_cached_image_features_train_like_encoding_every_step"

MUTATIONS = (
    Mutation("merge -> unload (the adapter is dropped)", "hindi_ocr/modeling.py",
             "model = model.merge_and_unload()", "model = model.unload()", ("tests/test_merge.py",)),
    Mutation("label mask: first target token unsupervised", "hindi_ocr/examples.py",
             "labels[row, prompt_ids.shape[1] : end] = torch.tensor(target)",
             "labels[row, prompt_ids.shape[1] + 1 : end] = torch.tensor(target[1:])", ("tests/test_labels.py",)),
    Mutation("label mask: end of turn unsupervised", "hindi_ocr/examples.py",
             "labels[row, prompt_ids.shape[1] : end] = torch.tensor(target)",
             "labels[row, prompt_ids.shape[1] : end - 1] = torch.tensor(target[:-1])", ("tests/test_labels.py",)),
    Mutation("split: the seed is ignored", "hindi_ocr/splits.py", 'f"{seed}\\0{image_file}"', 'f"{image_file}"',
             ("tests/test_dataset_builder.py",)),
    Mutation("split: test cut off by one row", "hindi_ocr/splits.py", "(key, position) <= test",
             "(key, position) < test", ("tests/test_dataset_builder.py",)),
    Mutation("feature cache: key blind to the pixels", "hindi_ocr/examples.py", "digest.update(image.tobytes())",
             "digest.update(b'')", (CACHE_TEST,)),
    Mutation("feature cache: a batch's freshly encoded rows mixed up", "hindi_ocr/training.py",
             "fresh[keys[i]] = row", "fresh[keys[missing[0]]] = row", (CACHE_TEST,)),
    Mutation("accumulation: each micro-batch's mean loss (num_items_in_batch dropped)", "hindi_ocr/training.py",
             "return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)",
             "return_outputs=return_outputs, num_items_in_batch=None)", ("tests/test_accumulation.py",)),
    Mutation("evaluation generates from one column too far (prompt + first target token)", "hindi_ocr/examples.py",
             "return int(has_label.nonzero()[0])", "return int(has_label.nonzero()[0]) + 1",
             ("tests/test_streaming.py::test_train_py_streams_trains_evaluates_and_saves",)),
    Mutation("infer.py ignores the line layout recorded beside the adapter", "hindi_ocr/compare.py",
             'line_layout or settings.get("line_layout", "squash")', 'line_layout or "squash"',
             ("tests/test_learning.py::test_lora_makes_a_briefly_trained_base_memorise_new_lines",), slow=True),
    Mutation("repetition stop never fires", "hindi_ocr/generation.py",
             "return looping(input_ids[:, self.prompt_length:])",
             "return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)",
             ("tests/test_failures.py::test_a_looping_model_stops_early_with_the_flag_set",)),
    Mutation("confidence from the wrong token positions (the token before the one chosen)", "hindi_ocr/generation.py",
             "self.steps.append(self._last.gather(1, input_ids[:, -1:])[:, 0])",
             "self.steps.append(self._last.gather(1, input_ids[:, -2:-1])[:, 0])",
             ("tests/test_failures.py::test_confidence_is_the_chosen_tokens_probability",)),
    Mutation("confidence leaves out the end token", "hindi_ocr/generation.py",
             "lengths.append(text if loop or text == len(row) else text + 1)", "lengths.append(text)",
             ("tests/test_learning.py::test_confidence_of_a_reader_is_its_chosen_tokens_probability",), slow=True),
    Mutation("catastrophic rate ignores the repetition stop", "hindi_ocr/scoring.py",
             "cer >= CATASTROPHIC_CER or bool(rep)", "cer >= CATASTROPHIC_CER",
             ("tests/test_failures.py::test_catastrophic_rate_on_hand_made_predictions",
              "tests/test_failures.py::test_compute_metrics_reads_the_repetition_flag_from_the_generated_ids")),
    Mutation("odd images: transparency laid on black paper", "hindi_ocr/examples.py",
             "Image.new(\"RGBA\", rgba.size, (255, 255, 255, 255))", "Image.new(\"RGBA\", rgba.size, (0, 0, 0, 255))",
             ("tests/test_bad_input.py::test_odd_images_read_alike_in_training_and_in_reading",)),
    Mutation("fold layout: pieces stacked bottom to top", "hindi_ocr/examples.py", "(0, i * image.height))",
             "(0, (pieces - 1 - i) * image.height))", ("tests/test_layouts.py",)),
    Mutation("resume: a cut-short safetensors file passes as complete", "hindi_ocr/checkpoints.py",
             "return None if size == expected else", "return None if size <= expected else",
             ("tests/test_resume.py::test_incomplete_checkpoints_are_told_apart_and_named",)),
    Mutation("the Hub token is pickled into training_args.bin", "hindi_ocr/hub.py", 'state["hub_token"] = None',
             "pass", ("tests/test_security.py",)),
    Mutation("demo: a card's sample path is not checked to stay in the model's samples/", "hindi_ocr/demo.py",
             "if path.parent != samples or not path.is_file():", "if not path.is_file():",
             ("tests/test_security.py::test_demo_copies_only_the_samples_train_py_writes_from_a_hostile_card",)),
    Mutation("card: the licence is one we chose, not the base card's", "hindi_ocr/card_reading.py",
             "found = {key: data.get(key) for key in LICENSE_KEYS if data.get(key)}",
             'found = {"license": "apache-2.0"}',
             ("tests/test_hub_roundtrip.py::test_the_card_licence_is_the_base_cards_read_at_push_time",)),
    Mutation("pages: re-read lines handed back in the wrong page order", "hindi_ocr/pages.py",
             "alone = read_alone([item for i in redo for item in groups[i]])",
             "alone = read_alone([item for i in reversed(redo) for item in groups[i]])",
             ("tests/test_pages.py::test_each_reread_reading_lands_on_its_own_line_across_pages_of_a_batch",)),
    Mutation("demo: uploads decoded whatever their pixel count (no limit of our own)", "hindi_ocr/demo_ui.py",
             'check_image(path, mode="header") or _too_many_pixels(path)', 'check_image(path, mode="header")',
             ("tests/test_demo.py::test_client_bad_uploads_get_messages_and_the_server_goes_on",)),
    Mutation("non-finite guard: the validation loss is not watched", "hindi_ocr/guard.py",
             'WATCHED = (("loss", "training loss"), ("eval_loss", "validation loss"), ("grad_norm", "gradient norm"))',
             'WATCHED = (("loss", "training loss"), ("grad_norm", "gradient norm"))',
             ("tests/test_nonfinite_guard.py::test_a_nan_validation_loss_alone_stops_the_run",)),
    Mutation("load_best_model_at_end keeps the checkpoint with the highest validation CER", "hindi_ocr/arguments.py",
             'greater_is_better: bool = field(default=False', 'greater_is_better: bool = field(default=True',
             ("tests/test_learning.py::test_load_best_model_at_end_keeps_the_lowest_validation_cer",)),
    Mutation("load_best_model_at_end: the best full checkpoint loaded by the Trainer's key names (kept the last)",
             "hindi_ocr/checkpoints.py", "if not self._reload_full_model(self.state.best_model_checkpoint, self.model):",
             "if True:", ("tests/test_learning.py::test_load_best_model_at_end_keeps_the_lowest_validation_cer",)),
    Mutation("resume: a full fine-tune's checkpoint loaded by the Trainer's key names (goes on from the base)",
             "hindi_ocr/checkpoints.py",
             "if not self._reload_full_model(resume_from_checkpoint, model if model is not None else self.model):",
             "if True:", ("tests/test_resume.py::test_a_full_finetune_resumes_from_its_checkpoint_weights",)),
    Mutation("generation stops only at the tokenizer's end of text, not at the end-of-turn token",
             "hindi_ocr/generation.py",
             "gen.eos_token_id = end_id if text.eos_token_id == end_id else [end_id, text.eos_token_id]",
             "gen.eos_token_id = text.eos_token_id",
             ("tests/test_learning.py::test_full_finetuning_memorises_its_training_lines",), slow=True),
    Mutation("pages: a line's gain unbounded (a crop with no paper to see is brightened to white)",
             "hindi_ocr/pages.py",
             "np.clip(np.array(paper, dtype=np.float64) / np.maximum(own, 1), 1 / MAX_GAIN, MAX_GAIN)",
             "np.array(paper, dtype=np.float64) / np.maximum(own, 1)",
             ("tests/test_pages.py::test_a_crop_with_no_paper_to_see_keeps_its_ink",)),
    Mutation("pages: a line's paper taken from its edge rows (a 1-pixel frame passes for paper)",
             "hindi_ocr/examples.py", "pixels = np.asarray(image.convert(\"RGB\"), dtype=np.uint8).reshape(-1, 3)",
             "pixels = np.asarray(image.convert(\"RGB\"), dtype=np.uint8)[[0, -1]].reshape(-1, 3)",
             ("tests/test_pages.py::test_a_line_with_a_frame_underline_or_dark_margin_keeps_its_ink_on_a_page",)),
    Mutation("rows: a line break inside one line's text let through", "hindi_ocr/text.py",
             "if char in LINE_BREAKS:", "if False:",
             ("tests/test_bad_input.py::test_windows_and_old_mac_line_ends",
              "tests/test_dataset_builder.py::test_a_line_break_in_one_lines_text_is_a_bad_row_in_swift_json_and_hub_"
              "datasets")),
    Mutation("pages: a line's own break kept in a page's target (the page gets an extra line)", "hindi_ocr/examples.py",
             "text = [\" \".join(normalize_text(t).splitlines()) for t in text]", "pass",
             ("tests/test_pages.py::test_a_page_target_holds_as_many_lines_as_the_page",)),
    Mutation("pages: a re-read round run only by the processes with a page to read again (hangs under ZeRO-3)",
             "hindi_ocr/page_training.py", "collective = generation_is_collective(model, gen_kwargs)",
             "collective = False",
             ("tests/test_pages.py::test_a_page_read_again_on_one_of_two_processes_with_collective_generation_"
              "finishes",), slow=True),
    Mutation("settings: hindi_ocr.json written only to output_dir, not into checkpoint-N before its upload",
             "hindi_ocr/training.py", "save_settings(output_dir or self.args.output_dir,",
             "save_settings(self.args.output_dir,",
             ("tests/test_resume.py::test_each_checkpoint_holds_its_reading_settings_before_the_trainer_uploads_it",)),
    Mutation("resume: --lines_per_page not compared with the checkpoint's", "hindi_ocr/checks.py",
             "        check_resume_format(training_args.resume_from_checkpoint, data_args)\n", "",
             ("tests/test_resume.py::test_resuming_with_another_page_format_is_refused_naming_both_values",)),
    Mutation("hub resume: the checkpoint's files read at the branch head, not at the commit its state came from",
             "hindi_ocr/hub_resume.py", "snapshot_download(repo_id, revision=commit,",
             "snapshot_download(repo_id, revision=revision,",
             ("tests/test_resume.py::test_hub_resume_reads_one_commit_while_the_next_checkpoint_lands",)),
    Mutation("streaming DDP: use_cpu not set (processes train alone)", "hindi_ocr/arguments.py",
             "self.use_cpu = True", "pass",
             ("tests/test_streaming.py::test_two_processes_train_on_a_stream_like_one_process_on_the_global_batch",),
             slow=True),
    Mutation("multi-process reading: overlapping shares (each process also reads the next one's first line)",
             "hindi_ocr/distributed_reading.py", "stop = min(start + lines_per_share, count)",
             "stop = min(start + lines_per_share + 1, count)",
             ("tests/test_read_scale.py::test_shares_are_disjoint_and_cover_every_line_of_a_round",)),
    Mutation("multi-process reading: gather without de-duplication (a padded line counted twice)",
             "hindi_ocr/distributed_reading.py", "ordered = sorted(by_index.items())",
             "ordered = sorted(((i, r) for part in parts for i, r in part), key=lambda item: item[0])",
             ("tests/test_read_scale.py::test_merge_puts_shares_in_input_order_and_counts_a_padded_line_once",)),
    Mutation("the shipped reader's weights shuffled", "hindi_ocr/reader.py",
             "    model.save_pretrained(out)\n",
             "    for p in model.parameters():\n        p.data = p.data.flatten()[torch.randperm(p.numel())].view_as(p)\n"
             "    model.save_pretrained(out)\n",
             ("tests/test_reader.py::test_the_reader_reads_heldout_lines_in_heldout_faces",)),
    Mutation("DDP eval: gather keeps the sampler's repeated lines", "hindi_ocr/training.py",
             "self.gather_function = partial(self.accelerator.gather_for_metrics,",
             "self.gather_function = partial(lambda t, **_: self.accelerator.gather(t),",
             ("tests/test_ddp.py::test_two_process_run_counts_each_test_line_once",), slow=True),
)


def tree_files() -> list[str]:
    """Tracked and untracked (not ignored) files of the working tree."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                         check=True).stdout.decode()
    return [name for name in out.split("\0") if name and (REPO / name).is_file()]


def copy_tree(dest: Path) -> None:
    for name in tree_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)


def run_one(mutation: Mutation, workdir: Path) -> tuple[str, float, str]:
    """(result, seconds, first failing test or a note)."""
    copy_tree(workdir)
    path = workdir / mutation.path
    text = path.read_text(encoding="utf-8")
    if text.count(mutation.old) != 1:
        return "stale", 0.0, f"{mutation.old!r} occurs {text.count(mutation.old)} times in {mutation.path}"
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(workdir), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutation.tests],
                          cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)
    if proc.returncode == 0:
        return "SURVIVED", seconds, ""
    if proc.returncode == 1:
        why = re.search(r"^E +(.+)$", proc.stdout, re.M)  # the first assertion line: caught for the right reason?
        return "caught", seconds, " ".join(filter(None, [failed[0] if failed else "",
                                                         why and f"({why.group(1)[:90]})"]))
    last = proc.stdout.strip().splitlines()[-1:] or proc.stderr.strip().splitlines()[-1:]
    return f"error (pytest exit {proc.returncode})", seconds, last[0] if last else ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--all", action="store_true", help="include the breaks that need a 2-process training run")
    p.add_argument("--only", action="append", help="run only the breaks whose name contains this text (repeatable)")
    p.add_argument("--list", action="store_true", help="list the breaks and their tests, run nothing")
    args = p.parse_args(argv)
    chosen = [m for m in MUTATIONS if (args.all or not m.slow or args.only) and
              (not args.only or any(text.lower() in m.name.lower() for text in args.only))]
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name}{' (slow)' if m.slow else ''}\n    {m.path}: {m.old!r} -> {m.new!r}\n    "
                  f"tests: {' '.join(m.tests)}")
        return 0
    rows = []
    for mutation in chosen:
        with tempfile.TemporaryDirectory(prefix="hindi-ocr-mutant-") as tmp:
            result, seconds, note = run_one(mutation, Path(tmp))
        rows.append((mutation.name, result, f"{seconds:.0f}", note))
        print(f"{result:>9}  {seconds:5.0f} s  {mutation.name}  {note}", flush=True)
    print("\n| break | result | seconds | first failing test |\n| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 1 if any(r[1] != "caught" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
