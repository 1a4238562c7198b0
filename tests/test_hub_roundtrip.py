"""Hub round trips against the local Hub server (tests/hub_server.py): train.py --push_to_hub, the model card,
reading the adapter back with infer.py, a failed final push and its retry, a merged-model push, and
dataset_builder.publish -> load_dataset.

One tiny training run (module-scoped, a subprocess pushing with an explicit --hub_token and no other token in its
environment) is shared by the model tests; the dataset test uses conftest's in-process ``local_hub``.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from huggingface_hub import DatasetCard, ModelCard

from hindi_ocr.render import write_line_folder
from hindi_ocr.tiny import build_tiny_model
from hub_server import LocalHub

REPO = Path(__file__).resolve().parent.parent
MODEL_REPO = "test-user/tiny-hindi-ocr"
EXPLICIT_TOKEN = "hf_explicit_cli_token_do_not_leak_0123456789"
LINES = ["नमस्ते", "भारत", "किताब", "हिन्दी", "पानी", "घर", "ज्ञान", "सूरज"]
SPLIT_OPTIONS = "validation_ratio=0.25,test_ratio=0.25"
MAX_NEW_TOKENS = 21  # what train.py generates with --max_target_tokens 20, and what the card's code uses
ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors", "processor_config.json", "tokenizer.json",
                 "tokenizer_config.json", "hindi_ocr.json", "README.md", "test_results.json"}


def hub_env(hub: LocalHub, home: Path, token: str | None) -> dict:
    """What conftest's local_hub sets for subprocesses; ``token=None``: no token in the environment at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING")) and k != "TRANSFORMERS_OFFLINE"}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1", HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_UPDATE_CHECK="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_UPDATE_DOWNLOAD_COUNTS="0",
               DO_NOT_TRACK="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    if token:
        env["HF_TOKEN"] = token
    return env


def run(args: list[str], env: dict, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def train_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train.py", "--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir", str(out),
            "--max_steps", "4", "--eval_steps", "4", "--save_steps", "2", "--report_to", "none",
            "--max_target_tokens", "20", "--dataset_options", SPLIT_OPTIONS, "--learning_rate", "0.01",
            "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1", *extra]


def read_predictions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """One tiny run pushed to MODEL_REPO with --push_to_hub --hub_token; every_save pushes checkpoints at steps 2
    and 4 (--hub_always_push: never skipped), and the step-2 one is made to fail."""
    root = tmp_path_factory.mktemp("hub_roundtrip")
    hub = LocalHub(root / "storage").start()
    hub.add_token(EXPLICIT_TOKEN)
    try:
        model = build_tiny_model(root / "tiny")
        data = write_line_folder(root / "data", LINES, size=20, image_name="line{}.png")
        out = root / "out"
        checkpoint_failure = hub.fail_next(rf"/{MODEL_REPO}/commit/", status=500, times=1)
        # No HF_TOKEN and an empty HF_HOME: the pushes can only succeed with the token given on the command line.
        flags = ["--push_to_hub", "--hub_model_id", MODEL_REPO, "--hub_token", EXPLICIT_TOKEN, "--hub_always_push"]
        done = run(train_args(model, data, out, *flags), hub_env(hub, root / "hf_home_train", None))
        yield SimpleNamespace(hub=hub, root=root, model=model, data=data, out=out, log=done.stdout + done.stderr,
                              checkpoint_failure=checkpoint_failure,
                              env=hub_env(hub, root / "hf_home", hub.token))
    finally:
        hub.stop()
    assert not hub.errors, "LocalHub internal errors:\n" + "\n".join(hub.errors)


def test_push_uploads_adapter_processor_settings_card_and_samples(pushed):
    files = pushed.hub.repo_files(MODEL_REPO)
    samples = sorted(p.relative_to(pushed.out).as_posix() for p in (pushed.out / "samples").glob("*.png"))
    assert samples == ["samples/1.png", "samples/2.png"]  # the 2 test lines
    for name in ADAPTER_FILES | set(samples):
        assert files.get(name) == (pushed.out / name).read_bytes(), name
    assert not [name for name in files if name.startswith("checkpoint-")]


def test_failed_checkpoint_push_does_not_stop_training(pushed):
    assert pushed.checkpoint_failure.hits == 1  # the step-2 push (checkpoint pushes run one after the other)
    titles = [commit["title"] for commit in pushed.hub.repo_commits(MODEL_REPO)]
    assert titles == ["End of training", "Training in progress, step 4", "initial commit"]
    assert (pushed.out / "checkpoint-4" / "adapter_model.safetensors").is_file()


def test_card_metadata_eval_results_and_widget(pushed):
    card = ModelCard.load(pushed.out / "README.md")
    assert (pushed.hub.repo_files(MODEL_REPO)["README.md"]).decode("utf-8") == str(card)
    data = card.data
    assert (data.library_name, data.pipeline_tag, data.language, data.license) == (
        "peft", "image-to-text", "hi", "other")  # a local base: no card to take a licence from
    assert "license_name" not in data.to_dict() and "license_link" not in data.to_dict()
    assert card.text.endswith(f"## Licence\n\nThe base model `{pushed.model.name} (a local checkpoint)` states no "
                              "licence this project could read, so the metadata says `other`: check the base model's "
                              "terms before you use or share this model.\n")
    assert {"ocr", "hindi", "devanagari"} <= set(data.tags)
    assert data.base_model is None  # a local base folder is no Hub id
    test = json.loads((pushed.out / "test_results.json").read_text())
    results = {r.metric_type: r for r in data.eval_results}
    assert results["cer"].metric_value == test["test_cer"] and results["wer"].metric_value == test["test_wer"]
    assert {(r.task_type, r.dataset_split, r.dataset_config) for r in results.values()} == {
        ("image-to-text", "test", "csv")}
    # The YAML itself, as the Hub reads it.
    front = yaml.safe_load(str(card).split("---\n")[1])
    assert front["model-index"][0]["results"][0]["metrics"][0] == {"type": "cer", "value": test["test_cer"],
                                                                   "name": "CER"}
    prefix = f"{pushed.hub.endpoint}/{MODEL_REPO}/resolve/main/"
    assert [w["src"] for w in data.widget] == [prefix + "samples/1.png", prefix + "samples/2.png"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for widget in data.widget:
        served = opener.open(widget["src"], timeout=30).read()
        assert served == (pushed.out / widget["src"][len(prefix):]).read_bytes()
    text = card.text
    for needle in ("PeftModel.from_pretrained", '"<|im_end|>"', f"--adapter {MODEL_REPO}", "| learning rate | 0.01,",
                   "| data | Hindi text lines (csv: data); 4 train, 2 validation, 2 test lines |", "## Limitations",
                   "![sample 1](samples/1.png)"):
        assert needle in text, needle
    assert "More Information Needed" not in text and "Framework versions" not in text  # not peft's/Trainer's card


def test_token_never_written_logged_or_pushed(pushed):
    args = torch.load(pushed.out / "training_args.bin", weights_only=False)
    assert args.hub_token is None and args.hub_model_id == MODEL_REPO and args.push_to_hub
    stored = [p for p in (pushed.root / "storage").rglob("*") if p.is_file()]  # every version of every file pushed
    written = [p for p in pushed.out.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in written if "checkpoint-" in str(p))
    for token in (EXPLICIT_TOKEN, pushed.hub.token):
        assert token not in pushed.log
        leaks = [p for p in stored + written if token.encode() in p.read_bytes()]
        assert not leaks, f"token found in {leaks}"


def test_infer_from_hub_reads_like_local_adapter_and_like_the_card_code(pushed, monkeypatch, capsys):
    import huggingface_hub

    import infer

    sample = pushed.out / "samples" / "1.png"
    common = ["--data_dir", str(pushed.data), "--max_new_tokens", str(MAX_NEW_TOKENS), str(sample)]
    local_out, hub_out = pushed.root / "local.jsonl", pushed.root / "hub.jsonl"
    final = pushed.hub.repo_commits(MODEL_REPO)[0]["id"]
    hub = run(["infer.py", "--adapter", MODEL_REPO, "--adapter_revision", final, *common, "--output", str(hub_out)],
              pushed.env)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # in-process: local files only
    infer.main(["--adapter", str(pushed.out), *common, "--output", str(local_out)])
    local_summary = capsys.readouterr().out.splitlines()[-1]
    local_records, hub_records = read_predictions(local_out), read_predictions(hub_out)
    assert hub_records == local_records and len(hub_records) == len(LINES) + 1
    assert any(r["prediction"].strip() for r in hub_records), "the adapter should make the tiny model write text"
    assert hub.stdout.splitlines()[-1] == local_summary and local_summary.startswith("CER ")

    # The card's transformers + peft code (run here on the local copy of the adapter) reads the sample the same way.
    card = pushed.hub.repo_files(MODEL_REPO)["README.md"].decode("utf-8")
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert f'PeftModel.from_pretrained(model, "{MODEL_REPO}")' in code
    exec(code.replace(f'"{MODEL_REPO}"', repr(str(pushed.out))).replace('"line.png"', repr(str(sample))), {})
    assert capsys.readouterr().out == hub_records[-1]["prediction"] + "\n"


def test_failed_final_push_keeps_output_and_the_printed_retry_completes(pushed):
    repo, out = "test-user/tiny-hindi-ocr-retry", pushed.root / "out_retry"
    rule = pushed.hub.fail_next(rf"/{repo}/commit/", status=500, times=None)
    try:
        # Resuming at the last step trains nothing more: it saves, evaluates test and pushes (which fails).
        done = run(train_args(pushed.model, pushed.data, out, "--push_to_hub", "--hub_model_id", repo,
                              "--resume_from_checkpoint", str(pushed.out / "checkpoint-4")), pushed.env, check=False)
    finally:
        pushed.hub.clear_failures()
    assert done.returncode == 1 and rule.hits == 3  # first attempt + 2 retries
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"push to {repo} failed (HTTP 500 Internal Server Error: Injected failure")
    assert str(out) in message
    for name in ADAPTER_FILES | {"samples/1.png", "training_args.bin"}:
        assert (out / name).is_file(), name
    assert set(pushed.hub.repo_files(repo)) == {".gitattributes"}

    retry = shlex.split(re.search(r"Retry the upload with `([^`]+)`", message).group(1))
    assert retry[0] == "hf"
    hf = subprocess.run([str(Path(sys.executable).with_name("hf")), *retry[1:]], env=pushed.env, capture_output=True,
                        text=True, timeout=300)
    assert hf.returncode == 0, hf.stderr
    files = pushed.hub.repo_files(repo)
    for name in ADAPTER_FILES | {"samples/1.png"}:
        assert files.get(name) == (out / name).read_bytes(), name
    assert ModelCard.load(out / "README.md").data.model_name == repo


def test_merged_model_push_has_weights_settings_and_the_adapter_results(pushed):
    merged, repo = pushed.root / "merged", "test-user/tiny-hindi-ocr-merged"
    done = run(["infer.py", "--adapter", MODEL_REPO, "--merge_lora", str(merged), "--push_to_hub", repo,
                "--max_new_tokens", str(MAX_NEW_TOKENS)], pushed.env)
    assert f"merged model pushed to {repo}" in done.stdout
    files = pushed.hub.repo_files(repo)
    for name in ("model.safetensors", "config.json", "generation_config.json", "processor_config.json",
                 "tokenizer.json", "hindi_ocr.json", "README.md"):
        assert files.get(name) == (merged / name).read_bytes(), name
    assert json.loads(files["hindi_ocr.json"]) == {"line_layout": "squash", "lines_per_page": 1}
    card = ModelCard.load(merged / "README.md")
    adapter = ModelCard.load(pushed.out / "README.md")
    assert card.data.library_name == "transformers" and card.data.eval_results == adapter.data.eval_results
    assert "PeftModel" not in card.text and f'from_pretrained("{repo}")' in card.text


def test_the_card_licence_is_the_base_cards_read_at_push_time(local_hub, tmp_path):
    """The licence fields come from the base model's own card on the Hub, never from this project; a base whose
    card has none (or no card, or a local folder) gives `other` and a sentence sending the user to the base's terms."""
    from huggingface_hub import HfApi

    from hindi_ocr.card import merged_card
    from hindi_ocr.card_reading import base_license

    api = HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    research = "---\nlicense: other\nlicense_name: vary-research\nlicense_link: LICENSE\n---\n# R\n"
    cards = {"labs/research-base": research,
             "labs/open-base": "---\nlicense: cc-by-nc-4.0\nlanguage: en\n---\n# O\n",
             "labs/silent-base": "---\nlanguage: en\n---\n# S: no licence in the metadata\n",
             "labs/cardless-base": None}
    for repo, text in cards.items():
        api.create_repo(repo)
        api.upload_file(path_or_fileobj=(text or "{}").encode(), path_in_repo="README.md" if text else "config.json",
                        repo_id=repo)
    local = tmp_path / "labs" / "open-base"  # a local base folder has no Hub card to read
    local.mkdir(parents=True)
    expected = {"labs/research-base": {"license": "other", "license_name": "vary-research",
                                       "license_link": f"{local_hub.endpoint}/labs/research-base/blob/main/LICENSE"},
                "labs/open-base": {"license": "cc-by-nc-4.0"}, "labs/silent-base": {}, "labs/cardless-base": {},
                str(local): {}, None: {}}
    assert {base: base_license(base, local_hub.token) for base in expected} == expected
    for base, licence in expected.items():
        card = merged_card("me/merged", base, "me/adapter", None, "squash", 21, 256, licence=base_license(base))
        front = yaml.safe_load(str(card).split("---\n")[1])
        assert {k: front[k] for k in ("license", "license_name", "license_link") if k in front} == (
            licence or {"license": "other"}), base
        section = card.text.split("## Licence\n\n")[1]
        if licence:
            assert section == (f"`{licence['license']}`, as stated by the card of the base model `{base}`, whose terms "
                               "this model is bound by.\n")
        else:
            assert section.endswith("so the metadata says `other`: check the base model's terms before you use or "
                                    "share this model.\n"), base


def test_dataset_publish_then_load_dataset_returns_the_same_lines(local_hub, tmp_path):
    import datasets

    from dataset_builder import publish
    from hindi_ocr.data import load_line_dataset

    data = write_line_folder(tmp_path / "data", LINES, size=20, image_name="line{}.png")
    publish.main(["--data_dir", str(data), "--repo_id", "test-user/hindi-lines", "--dataset_options", SPLIT_OPTIONS])
    files = local_hub.repo_files("test-user/hindi-lines", repo_type="dataset")
    assert {name.split("-")[0] for name in files if name.endswith(".parquet")} == {
        "data/train", "data/validation", "data/test"}
    assert not [name for name in files if name.endswith(".py")]  # nothing for datasets>=4 to refuse

    built = load_line_dataset(data_dir=str(data), **{"validation_ratio": 0.25, "test_ratio": 0.25})
    loaded = datasets.load_dataset("test-user/hindi-lines", cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == set(built) == {"train", "validation", "test"}
    for split in built:
        assert loaded[split]["text"] == built[split]["text"]
        assert loaded[split]["image_file"] == built[split]["image_file"]
        assert [im.size for im in loaded[split]["image"]] == [im.size for im in built[split]["image"]]

    card = DatasetCard(files["README.md"].decode("utf-8"))
    assert card.data.license == "unknown" and card.data.language == ["hi"]
    assert card.data.task_categories == ["image-to-text"]
    assert [s["num_examples"] for s in card.data.dataset_info["splits"]] == [4, 2, 2]  # kept from push_to_hub
    assert "| train | 4 |" in card.text and "| test | 2 |" in card.text
    assert 'load_dataset("test-user/hindi-lines")' in card.text
