"""Wrong flags end in SystemExit naming the flag and what to do, before anything slow or destructive happens."""

import logging
import re

import pytest
import torch
from transformers import BertConfig, BertModel, GotOcr2ForConditionalGeneration

import infer
import train
from hindi_ocr.adapters import adapter_mismatches
from hindi_ocr.modeling import attach_lora
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model, load_tiny

LINES = ["नमस्ते दुनिया", "भारत एक देश है", "किताब पढ़ो", "पानी गरम है"]
QUICK = ["--max_steps", "1", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
         "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--max_target_tokens", "16",
         "--dataset_options", "validation_ratio=0,test_ratio=0"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_line_folder(tmp_path_factory.mktemp("lines"), LINES, size=20)


def run_train(model, data, out, *extra):
    train.main(["--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(out), *QUICK,
                *extra])


def exit_message(call, *args) -> str:
    with pytest.raises(SystemExit) as caught:
        call(*args)
    return str(caught.value)


# --- the model ------------------------------------------------------------------------------------------------------

def test_unknown_or_empty_model_folder(tmp_path, data):
    empty = tmp_path / "empty"
    empty.mkdir()
    for model in (tmp_path / "no" / "such" / "model", empty):
        message = exit_message(run_train, model, data, tmp_path / "out")
        assert message.startswith(f"--model_name_or_path {str(model)!r}: could not load a config (")
        assert message.endswith("Pass a local folder written by save_pretrained (e.g. from `python -m hindi_ocr.tiny "
                                "DIR`) or a Hub id such as stepfun-ai/GOT-OCR-2.0-hf.")
        assert not (tmp_path / "out").exists()


def test_a_checkpoint_that_is_not_got_ocr2(tmp_path, data):
    bert = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                         intermediate_size=8)).save_pretrained(bert)
    assert exit_message(run_train, bert, data, tmp_path / "out") == (
        f"--model_name_or_path {str(bert)!r} is a 'bert' model; this project fine-tunes GOT-OCR2 (model_type "
        "'got_ocr2'), e.g. stepfun-ai/GOT-OCR-2.0-hf.")
    image = data / "output_images" / "0.png"
    assert exit_message(infer.main, ["--model_name_or_path", str(bert), str(image)]).startswith(
        f"--model_name_or_path {str(bert)!r} is a 'bert' model")


# --- step counts ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", ["0", "-5"])
def test_max_steps_must_count_updates(tmp_path, tiny, data, steps):
    assert exit_message(run_train, tiny, data, tmp_path / "out", "--max_steps", steps) == (
        f"--max_steps {steps}: give the number of optimizer updates, a positive number such as --max_steps 1000 "
        "(or -1 to train for --num_train_epochs)")
    assert exit_message(run_train, tiny, data, tmp_path / "out", "--max_steps", "-1", "--num_train_epochs", "0") == (
        "--max_steps -1 trains for --num_train_epochs, which is 0.0; give a positive number of epochs or of steps")


@pytest.mark.parametrize("flag", ["--batch_size", "--max_new_tokens"])
def test_infer_counts_must_be_positive(tmp_path, data, flag, capsys):
    with pytest.raises(SystemExit) as caught:
        infer.main([flag, "0", str(data / "output_images" / "0.png")])
    assert caught.value.code == 2
    assert f"argument {flag}: invalid positive_int value: '0'" in capsys.readouterr().err


# --- output_dir -----------------------------------------------------------------------------------------------------

def test_output_dir_of_another_run_is_refused_then_written_over_on_request(tmp_path, tiny, data, caplog):
    out = tmp_path / "out"
    (out / "checkpoint-9").mkdir(parents=True)
    (out / "checkpoint-9" / "trainer_state.json").write_text("{}")
    (out / "adapter_model.safetensors").write_bytes(b"an older run's adapter")
    (out / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    assert exit_message(run_train, tiny, data, out) == (
        f"--output_dir {out} already holds files (adapter_model.safetensors, checkpoint-9, notes.txt). Pass "
        "--resume_from_checkpoint true to continue that run, --overwrite_output_dir to write over it (files of the "
        "same name are replaced, nothing is deleted), or another --output_dir")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    with caplog.at_level(logging.WARNING, logger="hindi_ocr.checks"):
        run_train(tiny, data, out, "--overwrite_output_dir")
    assert (f"--overwrite_output_dir: writing over {out}, which holds adapter_model.safetensors, checkpoint-9, "
            "notes.txt; files of the same name are replaced, the others are kept") in caplog.text
    assert (out / "notes.txt").read_text() == "mine" and (out / "checkpoint-9" / "trainer_state.json").is_file()
    assert (out / "adapter_model.safetensors").read_bytes() != before[out / "adapter_model.safetensors"]
    assert (out / "adapter_config.json").is_file()

    (tmp_path / "a_file").write_text("x")
    assert exit_message(run_train, tiny, data, tmp_path / "a_file") == (
        f"--output_dir {tmp_path / 'a_file'} is a file; give a folder")


# --- adapters -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def adapter(tiny, tmp_path_factory):
    """A LoRA adapter made by the project's attach_lora on the tiny base (language, vision and projector)."""
    model, _ = load_tiny(tiny)
    path = tmp_path_factory.mktemp("adapter") / "lora"
    attach_lora(model, r=4, alpha=8, dropout=0.0, adapt_vision=True, train_projector=True).save_pretrained(path)
    return path


def test_an_adapter_for_another_base_is_refused_naming_both(tmp_path, tiny, adapter, data, capsys):
    other = build_tiny_model(tmp_path / "wider", text_intermediate_size=192)
    assert adapter_mismatches(GotOcr2ForConditionalGeneration.from_pretrained(tiny), adapter /
                              "adapter_model.safetensors") == []
    message = exit_message(infer.main, ["--model_name_or_path", str(other), "--adapter", str(adapter),
                                        str(data / "output_images" / "0.png")])
    assert message.startswith(f"--adapter {adapter} does not fit the base model {other}: it was trained on "
                              f"{str(tiny)!r} (base_model_name_or_path in its adapter_config.json) and 6 of its "
                              "tensors do not match this base, e.g. ")
    assert re.search(r"model\.language_model\.layers\.0\.mlp\.\w+_proj\.lora_[AB]\.weight is \[\d+, \d+\] but the "
                     r"base's model\.language_model\.layers\.0\.mlp\.\w+_proj\.weight is \[\d+, \d+\]", message)
    assert message.endswith("Drop --model_name_or_path to load the base the adapter names, or pass the base it was "
                            "trained on")

    capsys.readouterr()
    infer.main(["--adapter", str(adapter), "--max_new_tokens", "2", str(data / "output_images" / "0.png")])  # its own base: fits
    assert capsys.readouterr().out.startswith(f"{data / 'output_images' / '0.png'}\t")


def test_adapter_flag_pointing_elsewhere(tmp_path, tiny, data):
    image = str(data / "output_images" / "0.png")
    for args in (["--adapter", str(tiny)], ["--model_name_or_path", str(tiny), "--adapter", str(tiny)]):
        missing = "adapter_config.json" if len(args) == 2 else "adapter_model.safetensors"
        assert exit_message(infer.main, [*args, image]) == (
            f"--adapter {tiny} has no {missing} (it holds a full model: pass it as --model_name_or_path); pass the "
            "--output_dir of a LoRA run of train.py, or a checkpoint-N folder inside it")
    (tmp_path / "empty").mkdir()
    assert exit_message(infer.main, ["--adapter", str(tmp_path / "empty"), image]).startswith(
        f"--adapter {tmp_path / 'empty'} has no adapter_config.json; pass the --output_dir")


def test_resuming_with_other_lora_flags_names_the_flag(tmp_path, tiny, adapter, data):
    checkpoint = tmp_path / "out" / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (checkpoint / name).write_bytes((adapter / name).read_bytes())
    (checkpoint / "trainer_state.json").write_text("{}")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save({}, checkpoint / name)
    resume = ["--resume_from_checkpoint", "true"]
    assert exit_message(run_train, tiny, data, tmp_path / "out", *resume) == (
        f"--lora_r 8, but --resume_from_checkpoint {checkpoint} was trained with --lora_r 4; resume with the LoRA "
        "flags of that run")
    assert exit_message(run_train, tiny, data, tmp_path / "out", *resume, "--no_use_lora") == (
        f"--resume_from_checkpoint {checkpoint} holds a LoRA adapter; drop --no_use_lora to resume it")


def test_dataset_options_keep_commas_of_list_values():
    from hindi_ocr.arguments import parse_options

    assert parse_options("fonts=Hind,Teko-Bold,seed=3,augment=false,text_file=a b.txt") == {
        "fonts": "Hind,Teko-Bold", "seed": 3, "augment": False, "text_file": "a b.txt"}
    with pytest.raises(SystemExit, match=r"^--dataset_options: expected key=value, got 'Hind'$"):
        parse_options("Hind,seed=3")
    with pytest.raises(SystemExit, match=r"^--dataset_options: expected key=value, got '=3'$"):
        parse_options("=3")


# --- the data folder, as users type it: no other flag, the default (Hub) model ------------------------------------

@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_data_dir_is_checked_before_any_hub_request(kind, tmp_path, local_hub):
    """`python train.py --data_dir DIR` alone: the folder is named before the default model is looked up on the Hub
    (which, offline, retries for about 30 s), and nothing is asked of the Hub at all."""
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / "no" / "such" / "folder"
    if kind == "empty":
        folder.mkdir(parents=True)
    root = Path(train.__file__).resolve().parent
    done = subprocess.run([sys.executable, str(root / "train.py"), "--data_dir", str(folder)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1
    if kind == "missing":
        assert last == (f"--data_dir {folder}: no such folder. Give the folder that holds data.csv (image_file,text) "
                        "and the line images, or your ms-swift JSON with --dataset_config_name swift_json")
    else:
        assert last.startswith(f"--data_dir {folder}: {folder}/data.csv not found: the csv config reads data.csv")
    assert local_hub.count() == 0
    assert not (tmp_path / "outputs").exists()


def test_report_to_defaults_to_tensorboard():
    """Without --report_to the run logs to TensorBoard (HfArgumentParser once turned the default into [None])."""
    assert train.parse_args(["--output_dir", "x"])[3].report_to == ["tensorboard"]
    assert train.parse_args(["--output_dir", "x", "--report_to", "none"])[3].report_to == []
    assert train.parse_args(["--output_dir", "x", "--report_to", "tensorboard", "wandb"])[3].report_to == \
        ["tensorboard", "wandb"]
