"""Streaming (--streaming, ``load_dataset(..., streaming=True)``): the same rows as a build, images checked when
their row is read, CSV shards, the model card's samples, train.py on a stream, and the split between processes."""

import collections
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from accelerate.data_loader import prepare_data_loader
from safetensors.torch import load_file
from torch.utils.data import DataLoader

import infer
import train
from hindi_ocr import rows
from hindi_ocr.arguments import parse_args
from hindi_ocr.card import write_samples
from hindi_ocr.data import first_rows, in_memory, load_line_dataset, single_shard
from hindi_ocr.render import generate_lines, write_line_folder
from hindi_ocr.tiny import build_tiny_model
from hindi_ocr.training import build_model_and_processor, build_trainer, load_datasets

ROOT = Path(__file__).resolve().parent.parent
BUILDER = str(ROOT / "dataset_builder")
LINES = generate_lines(24, seed=5)
RUN = ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--report_to", "none",
       "--max_target_tokens", "16", "--per_device_eval_batch_size", "4"]


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """24 rendered lines in the seed layout, TestSamples/ holding the first 6 of them."""
    root = write_line_folder(tmp_path_factory.mktemp("lines") / "data", LINES, size=20)
    write_line_folder(root / "TestSamples", LINES[:6], size=20)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Three CSV shards, each in its own folder with its own images under the same names (0.png, 1.png, ...)."""
    root = tmp_path_factory.mktemp("sharded")
    for name, part in (("a", LINES[:11]), ("b", LINES[11:20]), ("c", LINES[20:])):
        folder = write_line_folder(root / "shards" / name, part, size=20)
        (folder / "data.csv").rename(folder / f"part-{name}.csv")
    return root


def columns(split, names=("image_file", "text")):
    """(image_file, text) per row, in order, without decoding an image."""
    return [tuple(row[n] for n in names) for row in split.select_columns(list(names))]


def image_paths(split):
    return [row["image"]["path"] for row in split.cast_column("image", datasets.Image(decode=False))]


def assert_same_rows(built, streamed):
    assert isinstance(streamed, datasets.IterableDatasetDict) and set(streamed) == set(built)
    for split in built:
        assert columns(streamed[split]) == columns(built[split]), split


# --- the builder ------------------------------------------------------------------------------------------------

def test_csv_stream_through_load_dataset_equals_the_build(lines, tmp_path):
    options = dict(data_dir=str(lines), trust_remote_code=True, validation_ratio=0.2)
    built = datasets.load_dataset(BUILDER, cache_dir=str(tmp_path / "cache"), **options)
    streamed = datasets.load_dataset(BUILDER, streaming=True, **options)
    assert [len(built[s]) for s in built] == [19, 5, 6]  # validation carved off by hash, test from TestSamples
    assert_same_rows(built, streamed)
    assert image_paths(streamed["validation"]) == image_paths(built["validation"])
    first = next(iter(streamed["train"]))  # images are opened lazily, as rows are read
    assert first["image"].size == built["train"][0]["image"].size

    carved = dict(test_dir="", test_ratio=0.25, validation_ratio=0.1, split_seed=7)
    built = load_line_dataset(data_dir=str(lines), cache_dir=str(tmp_path / "c2"), **carved)
    streamed = load_line_dataset(data_dir=str(lines), streaming=True, **carved)
    assert [len(built[s]) for s in built] == [16, 2, 6]
    assert_same_rows(built, streamed)


def test_swift_json_and_synthetic_streams_equal_the_build(lines, tmp_path):
    records = [{"query": "<image>", "response": text, "images": [f"output_images/{i}.png"]}
               for i, text in enumerate(LINES)]
    (lines / "train.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n",
                                       encoding="utf-8")
    try:
        options = dict(data_dir=str(lines), trust_remote_code=True, test_ratio=0.2)
        built = datasets.load_dataset(BUILDER, "swift_json", cache_dir=str(tmp_path / "c1"), **options)
        assert_same_rows(built, datasets.load_dataset(BUILDER, "swift_json", streaming=True, **options))
        assert [len(built[s]) for s in built] == [18, 1, 5]
    finally:
        (lines / "train.jsonl").unlink()

    options = dict(config_name="synthetic", train_lines=3, validation_lines=1, test_lines=2, fonts="Hind,Mukta")
    built = load_line_dataset(cache_dir=str(tmp_path / "c2"), **options)
    streamed = load_line_dataset(streaming=True, **options)
    assert_same_rows(built, streamed)
    assert [row["image"].tobytes() for row in streamed["test"]] == [im.tobytes() for im in built["test"]["image"]]


def test_images_are_checked_when_their_row_is_read(lines, tmp_path, caplog):
    data = tmp_path / "data"
    write_line_folder(data, LINES[:6], size=20)
    broken = data / "output_images" / "3.png"
    broken.write_bytes(broken.read_bytes()[:-40])
    csv_path = data / "data.csv"
    message = f"{csv_path}, line 5: image {broken} is unreadable or truncated ("
    options = dict(data_dir=str(data), validation_ratio=0, test_ratio=0)
    with pytest.raises(rows.InvalidRowError) as built_error:
        load_line_dataset(cache_dir=str(tmp_path / "cache"), **options)
    assert str(built_error.value).startswith(message)

    stream = load_line_dataset(streaming=True, **options)["train"]  # the index pass opens no image
    read = []
    with pytest.raises(rows.InvalidRowError) as streamed_error:
        for row in stream.select_columns(["text"]):
            read.append(row["text"])
    assert str(streamed_error.value) == str(built_error.value)
    assert read == LINES[:3]  # the rows before it were yielded

    with caplog.at_level(logging.WARNING, logger="hindi_ocr.rows"):
        skipped = load_line_dataset(streaming=True, skip_invalid=True, **options)["train"]
        assert [text for _, text in columns(skipped)] == LINES[:3] + LINES[4:6]
    assert f"{csv_path}: skipped 1 invalid rows (1 bad_image); first: line 5: image {broken}" in caplog.text


def test_text_problems_stop_the_stream_before_it_starts_and_skips_match_the_build(tmp_path):
    data = tmp_path / "data"
    write_line_folder(data, LINES[:8], size=20)
    body = (data / "data.csv").read_text(encoding="utf-8").splitlines()
    body[3] = "2.png,  "  # line 4: no text
    body[6] = "1.png,दूसरा पाठ"  # line 7: 1.png again, with another text than on line 3
    (data / "data.csv").write_text("\n".join(body) + "\n", encoding="utf-8")
    with pytest.raises(rows.InvalidRowError,
                       match=re.escape(f"{data / 'data.csv'}, line 4: text is empty or whitespace-only")):
        load_line_dataset(data_dir=str(data), streaming=True)  # found by the index pass, before any row is read

    options = dict(data_dir=str(data), skip_invalid=True, validation_ratio=0.25, test_ratio=0)
    built = load_line_dataset(cache_dir=str(tmp_path / "c1"), **options)
    assert [len(built[s]) for s in built] == [4, 2]
    assert_same_rows(built, load_line_dataset(streaming=True, **options))

    # A missing image is dropped by the build before the split, by the stream when its row comes up (after the
    # split, which therefore counts it): with nothing carved off both give the same lines.
    with open(data / "data.csv", "a", encoding="utf-8") as handle:
        handle.write("gone.png,नया\n")
    options.update(validation_ratio=0)
    built = load_line_dataset(cache_dir=str(tmp_path / "c2"), **options)
    assert_same_rows(built, load_line_dataset(streaming=True, **options))
    assert "gone.png" not in built["train"]["image_file"]


# --- CSV shards ---------------------------------------------------------------------------------------------------

def test_csv_shards_by_glob_with_images_beside_each_shard(shards, tmp_path):
    options = dict(data_dir=str(shards), data_files={"train": "shards/*/part-*.csv"}, validation_ratio=0.2,
                   test_ratio=0.1)
    built = load_line_dataset(cache_dir=str(tmp_path / "cache"), **options)
    streamed = load_line_dataset(streaming=True, **options)
    assert_same_rows(built, streamed)
    assert streamed["train"].n_shards == 3  # one shard per file: split between workers and processes by file
    every = sorted(p for split in built for p in image_paths(built[split]))
    expected = sorted(str(shards / "shards" / name / "output_images" / f"{i}.png")
                      for name, n in (("a", 11), ("b", 9), ("c", 4)) for i in range(n))
    assert every == expected  # 0.png of shard b is b's own image, not a's
    assert sorted(p for split in streamed for p in image_paths(streamed[split])) == expected

    by_csv_file = load_line_dataset(data_dir=str(shards), csv_file="shards/*/part-*.csv", streaming=True,
                                    validation_ratio=0.2, test_ratio=0.1)
    assert_same_rows(built, by_csv_file)


def test_a_bad_row_in_a_shard_names_the_shard_and_line(tmp_path):
    bad = tmp_path / "copy"
    write_line_folder(bad / "a", LINES[:3], size=20)
    write_line_folder(bad / "b", LINES[3:6], size=20)
    (bad / "b" / "data.csv").write_text('image_file,text\n0.png,ठीक\n1.png,"दो\nपंक्तियाँ"\n9.png,खो गया\n',
                                        encoding="utf-8")
    options = dict(data_dir=str(bad), data_files="*/data.csv", validation_ratio=0, test_ratio=0)
    # the quoted two-line cell is the first bad row (a line's text is one line), named by its shard and line
    message = f"{bad / 'b' / 'data.csv'}, line 3: text has a line break (U+000A at position 3)"
    with pytest.raises(rows.InvalidRowError, match=re.escape(message)):
        load_line_dataset(cache_dir=str(tmp_path / "cache"), **options)
    with pytest.raises(rows.InvalidRowError, match=re.escape(message)):  # when the stream is built or read
        list(load_line_dataset(streaming=True, **options)["train"].select_columns(["text"]))


# --- train.py's data on a stream ------------------------------------------------------------------------------------

def test_samples_and_first_rows_of_a_stream_and_of_a_parquet_folder(lines, tmp_path):
    built = load_line_dataset(data_dir=str(lines), cache_dir=str(tmp_path / "cache"))
    streamed = load_line_dataset(data_dir=str(lines), streaming=True)
    assert columns(first_rows(streamed["train"], 4)) == columns(built["train"])[:4]

    assert write_samples(tmp_path / "built", built)[1] == [(f"samples/{n}.png", LINES[n - 1]) for n in (1, 2, 3)]
    assert write_samples(tmp_path / "streamed", streamed) == write_samples(tmp_path / "built", built)
    for n in (1, 2, 3):
        assert (tmp_path / "streamed" / f"samples/{n}.png").read_bytes() == \
               (tmp_path / "built" / f"samples/{n}.png").read_bytes()

    hub_like = tmp_path / "parquet"  # any dataset datasets can stream, here a parquet folder as on the Hub
    (hub_like / "data").mkdir(parents=True)
    for split in built:
        built[split].to_parquet(str(hub_like / "data" / f"{split}-00000-of-00001.parquet"))
    stream = load_line_dataset(str(hub_like), streaming=True)
    assert isinstance(stream["train"], datasets.IterableDataset)
    assert_same_rows(built, stream)
    assert columns(in_memory(stream["test"])) == columns(built["test"])


def test_streaming_needs_max_steps():
    with pytest.raises(SystemExit) as caught:
        parse_args(["--streaming", "--max_steps", "-1"])
    assert str(caught.value) == (
        "--streaming needs --max_steps N with N > 0 (got --max_steps -1): a streamed dataset has no length, so the "
        "number of optimizer updates cannot come from --num_train_epochs")


def test_the_training_stream_is_the_first_n_lines_shuffled_by_the_seed(lines, tiny, tmp_path):
    def train_order(seed):
        model_args, data_args, lora_args, training_args = parse_args(
            ["--model_name_or_path", str(tiny), "--data_dir", str(lines), "--output_dir", str(tmp_path / "out"),
             "--streaming", "--max_train_samples", "10", "--shuffle_buffer_size", "4", "--seed", str(seed), *RUN])
        splits = load_datasets(data_args)
        model, processor = build_model_and_processor(model_args, lora_args, training_args, max_new_tokens=17)
        trainer = build_trainer(model, processor, splits, data_args, training_args)
        return [name for name, _ in columns(trainer.train_dataset)]

    built = load_line_dataset(data_dir=str(lines), cache_dir=str(tmp_path / "cache"))
    first_ten = [name for name, _ in columns(built["train"].select(range(10)))]
    order = train_order(0)
    assert sorted(order) == sorted(first_ten) and order != first_ten
    assert train_order(0) == order and train_order(1) != order


def test_train_py_streams_trains_evaluates_and_saves(lines, tiny, tmp_path, capsys):
    out = tmp_path / "out"
    train.main(["--model_name_or_path", str(tiny), "--data_dir", str(lines), "--output_dir", str(out), "--streaming",
                "--max_steps", "4", "--eval_steps", "2", "--save_steps", "4", "--max_eval_samples", "3", *RUN])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [record["step"] for record in state["log_history"] if "eval_cer" in record] == [2, 4]
    # The streamed test evaluation scores what infer.py reads with the saved adapter (CER printed to 4 places).
    test_cer = json.loads((out / "test_results.json").read_text())["test_cer"]
    capsys.readouterr()
    infer.main(["--adapter", str(out), "--data_dir", str(lines / "TestSamples"), "--max_new_tokens", "17"])
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith(f"CER {test_cer:.4f} "), (test_cer, summary)
    assert (out / "adapter_model.safetensors").is_file() and (out / "checkpoint-4").is_dir()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| test | streamed |" in card
    assert f"| ![sample 1](samples/1.png) | {LINES[0]} |" in card  # the first TestSamples line


# --- data-parallel --------------------------------------------------------------------------------------------------

def per_process(stream, processes=2, batch=2):
    """The image_file of every row each process trains on, through accelerate's own split (what the Trainer uses
    with dispatch_batches off)."""
    seen = []
    for rank in range(processes):
        loader = DataLoader(stream, batch_size=batch, collate_fn=lambda rows: [r["image_file"] for r in rows])
        loader = prepare_data_loader(loader, num_processes=processes, process_index=rank, put_on_device=False,
                                     dispatch_batches=False)
        seen.append([name for names in loader for name in names])
    return seen


def test_each_process_gets_as_many_batches_and_each_line_once_per_pass(tmp_path):
    root = tmp_path / "data"
    for n, (start, stop) in enumerate(((0, 5), (5, 8), (8, 9))):  # shards of 5, 3 and 1 lines
        write_line_folder(root / f"s{n}", LINES[start:stop], size=20, image_name=f"s{n}-{{}}.png")
    stream = load_line_dataset(data_dir=str(root), data_files="s*/data.csv", validation_ratio=0, test_ratio=0,
                               streaming=True)["train"]
    by_file = per_process(stream.shuffle(seed=0, buffer_size=10))  # accelerate hands whole files out: unequal steps
    assert sorted(by_file[0] + by_file[1]) == sorted(name for name, _ in columns(stream))
    assert len(by_file[0]) != len(by_file[1])

    first, second = per_process(single_shard(stream).shuffle(seed=0, buffer_size=10))  # what build_trainer does
    assert len(first) == len(second) == 6  # 9 lines in global batches of 4: the last one padded with 3 lines
    counts = collections.Counter(first + second)
    assert sorted(counts) == sorted(name for name, _ in columns(stream))
    assert sorted(counts.values()) == [1] * 6 + [2] * 3


def test_two_processes_train_on_a_stream_like_one_process_on_the_global_batch(lines, tiny, tmp_path):
    """torchrun with 2 processes x 2 lines must make the updates of one process x 4 lines: each process keeps its
    half of every global batch of the one-shard stream and the gradients are all-reduced. A launch whose processes
    train alone (no process group: each reads the whole stream 2 lines a step, the ``alone`` run below) ends
    elsewhere, and the tolerances tell the two apart. No --ddp_backend: gloo is chosen automatically (README)."""
    flags = ["--model_name_or_path", str(tiny), "--data_dir", str(lines), "--streaming", "--max_steps", "3",
             "--eval_steps", "3", "--save_strategy", "no", "--learning_rate", "3e-3", "--lora_dropout", "0",
             "--logging_steps", "1", "--dataset_options", "validation_ratio=0.1", *RUN]
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "train.py"), *flags, "--output_dir", str(out)]
    proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    reference = tmp_path / "one_process"
    train.main([*flags, "--output_dir", str(reference), "--per_device_train_batch_size", "4"])

    # What each process of a run without the all-reduce saves: it trains alone, on the whole stream, 2 lines a step.
    alone = tmp_path / "alone"
    train.main([*flags, "--output_dir", str(alone), "--per_device_train_batch_size", "2"])

    states = {run: json.loads((run / "trainer_state.json").read_text()) for run in (out, reference, alone)}
    losses = {run: [r["loss"] for r in state["log_history"] if "loss" in r] for run, state in states.items()}
    adapters = {run: load_file(run / "adapter_model.safetensors") for run in states}
    assert states[out]["global_step"] == states[reference]["global_step"] == 3
    # Measured: the 2-process run matches to 6e-7 in the adapter and exactly in the logged loss.
    assert len(losses[reference]) == 3 and losses[out] == pytest.approx(losses[reference], rel=1e-5, abs=0)
    assert adapters[out].keys() == adapters[reference].keys()
    for name in adapters[reference]:
        torch.testing.assert_close(adapters[out][name], adapters[reference][name], rtol=0, atol=1e-4, msg=name)
    # The comparison can fail: the lone-process result is far outside both tolerances (adapter: measured 1.2e-2).
    assert losses[alone] != pytest.approx(losses[reference], rel=1e-3)
    assert max((adapters[alone][k] - adapters[reference][k]).abs().max() for k in adapters[reference]) > 1e-3
    # validation and test were read into memory for the data-parallel evaluation: the card knows their size
    assert "| test | 6 |" in (out / "README.md").read_text(encoding="utf-8")
    assert [r["step"] for r in states[out]["log_history"] if "eval_cer" in r] == [3]
