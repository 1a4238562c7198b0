"""The promises of SECURITY.md: no code from the Hub, no unpickling of weights, no token on disk or on screen."""

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerState

import infer
import train
from hindi_ocr.modeling import attach_lora
from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model, load_tiny

REPO = Path(__file__).resolve().parent.parent
QUICK = ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--eval_strategy", "no",
         "--max_target_tokens", "16", "--dataset_options", "validation_ratio=0,test_ratio=0"]


class Payload:
    """Unpickling this runs code: it creates ``marker``. A safe loader must refuse before that happens."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_line_folder(tmp_path_factory.mktemp("lines"), ["नमस्ते दुनिया", "भारत एक देश है"], size=20)


def project_sources() -> list[Path]:
    """The project's own Python files: everything but tests (which load the dataset script), run outputs and hidden
    folders (.git, and the virtual environments CI makes: .venv, .venv-newest)."""
    def ours(path: Path) -> bool:
        top = path.relative_to(REPO).parts[0]
        return not top.startswith(".") and top not in {"tests", "outputs"}

    return sorted(p for p in REPO.rglob("*.py") if ours(p))


def test_trust_remote_code_is_never_turned_on():
    sources = project_sources()
    assert {REPO / "train.py", REPO / "infer.py", REPO / "hindi_ocr" / "modeling.py",
            REPO / "dataset_builder" / "dataset_builder.py"} <= set(sources)
    turned_on = re.compile(r"trust_remote_code\s*=\s*(?!False\b)|[\"']trust_remote_code[\"']\s*:\s*(?!False\b)")
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}" for path in sources
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if turned_on.search(line)]
    assert found == []


def test_a_pickle_only_base_model_is_refused_unopened(tmp_path, tiny, data):
    model = tmp_path / "pickled"
    model.mkdir()
    for path in tiny.iterdir():
        if path.suffix != ".safetensors":
            (model / path.name).write_bytes(path.read_bytes())
    marker = tmp_path / "code-ran"
    torch.save({"weights": Payload(marker)}, model / "pytorch_model.bin")
    with pytest.raises(SystemExit) as caught:
        infer.main(["--model_name_or_path", str(model), str(data / "output_images" / "0.png")])
    assert str(caught.value).startswith(f"--model_name_or_path {str(model)!r}: ")
    assert "no file named model.safetensors" in str(caught.value)
    assert str(caught.value).endswith("This project loads weights from safetensors only (a pytorch_model.bin is a "
                                      "pickle, which can run code when loaded); re-save the model with "
                                      "save_pretrained, which writes model.safetensors")
    assert not marker.exists()


@pytest.fixture(scope="module")
def adapter(tiny, tmp_path_factory):
    model, _ = load_tiny(tiny)
    path = tmp_path_factory.mktemp("adapter") / "lora"
    attach_lora(model, r=4, alpha=8, dropout=0.0).save_pretrained(path)
    return path


def test_a_pickle_adapter_needs_allow_pickle_adapter_and_still_runs_no_code(tmp_path, tiny, adapter, data, capsys):
    pickled = tmp_path / "pickled_adapter"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_bytes((adapter / "adapter_config.json").read_bytes())
    torch.save(load_file(adapter / "adapter_model.safetensors"), pickled / "adapter_model.bin")
    image = str(data / "output_images" / "0.png")
    with pytest.raises(SystemExit) as caught:
        infer.main(["--adapter", str(pickled), image])
    assert str(caught.value) == (
        f"--adapter {pickled} has only adapter_model.bin, a pickle file that can run code when it is loaded; this "
        "project loads adapters from adapter_model.safetensors only. If you trust where it came from, pass "
        "--allow_pickle_adapter (it is then loaded with torch.load(weights_only=True)), or re-save it once with "
        "save_pretrained, which writes safetensors")

    capsys.readouterr()
    infer.main(["--adapter", str(pickled), "--allow_pickle_adapter", "--max_new_tokens", "2", image])
    assert capsys.readouterr().out.startswith(f"{image}\t")

    marker = tmp_path / "code-ran"
    torch.save({"weights": Payload(marker)}, pickled / "adapter_model.bin")
    with pytest.raises(Exception, match="Weights only load failed"):
        infer.main(["--adapter", str(pickled), "--allow_pickle_adapter", image])
    assert not marker.exists()


def test_resuming_never_unpickles_code(tmp_path, tiny, adapter, data):
    """The Trainer reads optimizer, scheduler and RNG state with torch.load(weights_only=True) (transformers 5)."""
    out = tmp_path / "out"
    checkpoint = out / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (checkpoint / name).write_bytes((adapter / name).read_bytes())
    TrainerState(global_step=1, max_steps=2, train_batch_size=2).save_to_json(str(checkpoint / "trainer_state.json"))
    marker = tmp_path / "code-ran"
    torch.save({"state": Payload(marker)}, checkpoint / "optimizer.pt")
    torch.save({}, checkpoint / "scheduler.pt")
    torch.save({}, checkpoint / "rng_state.pth")
    with pytest.raises(Exception, match="Weights only load failed"):
        train.main(["--model_name_or_path", str(tiny), "--data_dir", str(data), "--output_dir", str(out),
                    "--max_steps", "2", "--report_to", "none", "--resume_from_checkpoint", "true", "--lora_r", "4",
                    "--lora_alpha", "8", *QUICK])
    assert not marker.exists()


def test_the_token_is_never_written_or_printed(tmp_path, tiny, data, monkeypatch, capsys, caplog):
    flag_token, env_token = "hf_flagTOKENnotForDisk0123456789", "hf_envTOKENnotForDisk9876543210"
    monkeypatch.setenv("HF_TOKEN", env_token)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    train.main(["--model_name_or_path", str(tiny), "--data_dir", str(data), "--output_dir", str(out),
                "--hub_token", flag_token, "--max_steps", "1", "--save_steps", "1", "--report_to", "tensorboard",
                "--logging_steps", "1", *QUICK])
    written = [p for p in out.rglob("*") if p.is_file()]
    assert out / "checkpoint-1" / "training_args.bin" in written and any("tfevents" in p.name for p in written)
    assert str(out).encode() in (out / "training_args.bin").read_bytes()  # the arguments are there, as plain bytes
    captured = capsys.readouterr()
    for token in (flag_token, env_token):
        assert [p for p in written if token.encode() in p.read_bytes()] == []
        assert token not in captured.out + captured.err + caplog.text


def test_demo_copies_only_the_samples_train_py_writes_from_a_hostile_card(tmp_path, caplog):
    """A downloaded model folder's README.md names files the demo copies into the folder Gradio serves: only
    samples/N.png inside the model folder gets there; absolute paths, ``..`` and symlinks leaving it are skipped."""
    from PIL import Image

    from hindi_ocr.demo import card_examples

    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), "red").save(secret)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (8, 8), "blue").save(outside / "1.png")
    model = tmp_path / "downloaded" / "model"
    (model / "samples").mkdir(parents=True)
    Image.new("RGB", (8, 8), "white").save(model / "samples" / "1.png")
    (model / "samples" / "2.png").symlink_to(secret)
    (model / "samples" / "notes.txt").write_text("private", encoding="utf-8")  # inside, but not a sample image
    (model / "nested").mkdir()
    (model / "nested" / "samples").symlink_to(outside, target_is_directory=True)  # nested/samples/1.png leaves too
    names = ["samples/1.png", str(secret), "../../secret.png", "samples/../../../secret.png", "samples/2.png",
             "nested/samples/1.png", "samples/notes.txt"]
    rows = "\n".join(f"| ![sample {n}]({name}) | line {n} |" for n, name in enumerate(names, start=1))
    (model / "README.md").write_text(f"# hostile\n\n| image | reference |\n|---|---|\n{rows}\n", encoding="utf-8")
    served = tmp_path / "served"
    served.mkdir()
    with caplog.at_level("WARNING", logger="hindi_ocr.demo"):
        examples = card_examples(str(model), served)
    assert examples == [(str(served / "sample-1.png"), "line 1")]
    assert sorted(p.name for p in served.iterdir()) == ["sample-1.png"]
    assert (served / "sample-1.png").read_bytes() == (model / "samples" / "1.png").read_bytes()
    skipped = [r.getMessage() for r in caplog.records if r.name == "hindi_ocr.demo"]
    assert [m.split(" ")[1] for m in skipped] == names[1:], skipped
    assert all(" skipped (" in m for m in skipped)
    # The model folder's own samples folder as a symlink out of it is refused as well.
    (model / "samples" / "1.png").unlink()
    (model / "samples" / "2.png").unlink()
    (model / "samples" / "notes.txt").unlink()
    (model / "samples").rmdir()
    (model / "samples").symlink_to(outside, target_is_directory=True)
    assert card_examples(str(model), served) == [] and sorted(p.name for p in served.iterdir()) == ["sample-1.png"]
