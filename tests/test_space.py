"""Space publishing against the local Hub server: ``train.py --push_to_hub --push_demo_space`` uploads the model,
then a Gradio Space for it whose files are checked byte for byte; the model card links the Space; the Space's
``app.py``, run from a downloaded copy of the Space, serves what ``infer.py`` reads; ``python -m hindi_ocr.demo
--push_to_space --private``; a failed Space push; the requirement pin.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from huggingface_hub import HfApi

from demo_helpers import REPO, infer_predictions, loud_tiny_model, start_demo, stop
from hindi_ocr import __version__
from hindi_ocr.checks import check_demo_space
from hindi_ocr.render import write_line_folder
from hindi_ocr.space import TESTED_GRADIO, project_requirement, public_git_url, write_space
from hub_server import LocalHub
from test_hub_roundtrip import SPLIT_OPTIONS, hub_env, run

pytestmark = pytest.mark.usefixtures("hub_reachable")  # conftest: the local Hub also with HF_HUB_OFFLINE=1
gradio_client = pytest.importorskip("gradio_client", reason='the demo extra is not installed: pip install -e ".[demo]"')

MODEL_REPO = "test-user/tiny-ocr"
SPACE = MODEL_REPO + "-demo"
LINES = ["नमस्ते", "भारत", "किताब", "हिन्दी", "पानी", "घर", "ज्ञान", "सूरज"]
SPACE_FILES = {"app.py", "requirements.txt", "packages.txt", "README.md"}
PIN = re.compile(r"^hindi-ocr\[demo\](==\d+\.\d+\.\d+| @ git\+https://\S+@[0-9a-f]{40})$")


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A 2-step LoRA run on the loud tiny model, pushed with its demo Space."""
    root = tmp_path_factory.mktemp("space")
    hub = LocalHub(root / "storage").start()
    try:
        model = loud_tiny_model(root / "loud-tiny")
        data = write_line_folder(root / "data", LINES, size=32)
        env = {**hub_env(hub, root / "hf_home", hub.token), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
               "GRADIO_ANALYTICS_ENABLED": "False"}
        out = root / "out"
        done = run(["train.py", "--model_name_or_path", str(model), "--data_dir", str(data), "--output_dir",
                    str(out), "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--report_to", "none",
                    "--max_target_tokens", "20", "--dataset_options", SPLIT_OPTIONS, "--learning_rate", "0.01",
                    "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
                    "--push_to_hub", "--hub_model_id", MODEL_REPO, "--push_demo_space"], env)
        yield SimpleNamespace(hub=hub, root=root, data=data, out=out, env=env, log=done.stdout + done.stderr)
    finally:
        hub.stop()
    assert not hub.errors, "LocalHub internal errors:\n" + "\n".join(hub.errors)


def front_matter(readme: str) -> dict:
    return yaml.safe_load(readme.split("---\n")[1])


def test_train_pushes_the_space_files(pushed):
    files = pushed.hub.repo_files(SPACE, repo_type="space")
    assert set(files) == SPACE_FILES | {".gitattributes"}
    for name in SPACE_FILES:  # what was uploaded is what output_dir/_demo_space holds
        assert files[name] == (pushed.out / "_demo_space" / name).read_bytes(), name
    assert not [name for name in pushed.hub.repo_files(MODEL_REPO) if name.startswith("_demo_space")]
    assert files["app.py"].decode() == (
        f'"""Gradio Space for {MODEL_REPO}: the demo page of hindi-ocr (python -m hindi_ocr.demo)."""\n\n'
        "from hindi_ocr.demo import main\n\n"
        f"main(['--adapter', '{MODEL_REPO}', '--title', 'Hindi line OCR'])\n")
    requirement = files["requirements.txt"].decode().splitlines()[1]
    assert PIN.match(requirement), requirement
    assert files["packages.txt"] == b"tesseract-ocr\ntesseract-ocr-hin\n"
    assert not [name for name, data in files.items() if pushed.hub.token.encode() in data]  # no token written
    readme = files["README.md"].decode()
    meta = front_matter(readme)
    try:
        import gradio
        version = gradio.__version__
    except ImportError:
        version = TESTED_GRADIO
    assert (meta["sdk"], meta["sdk_version"], meta["app_file"], meta["models"], meta["suggested_hardware"]) == (
        "gradio", version, "app.py", [MODEL_REPO], "t4-small")  # the base is a local folder: no Hub id to list
    assert meta["license"] == "other"  # the model card's, which found no licence on its local base
    assert f'pip install "{requirement}"' in readme and f"--adapter {MODEL_REPO}" in readme
    assert str(pushed.root) not in readme  # the local base folder means nothing on the Hub; a warning says so
    assert f"the adapter's base model {pushed.root / 'loud-tiny'} is not a Hub id" in pushed.log
    info = HfApi(endpoint=pushed.hub.endpoint, token=pushed.hub.token).space_info(SPACE)
    assert info.sdk == "gradio" and info.private is False


def test_model_card_links_the_space(pushed):
    card = pushed.hub.repo_files(MODEL_REPO)["README.md"].decode()
    assert f"## Try it in a browser\n\n[{SPACE}]({pushed.hub.endpoint}/spaces/{SPACE}) is a Gradio Space" in card


def test_space_app_run_from_a_download_serves_infer_predictions(pushed):
    api = HfApi(endpoint=pushed.hub.endpoint, token=pushed.hub.token)
    folder = Path(api.snapshot_download(SPACE, repo_type="space", local_dir=pushed.root / "space-copy"))
    images = sorted((pushed.data / "output_images").glob("*.png"))[:2]
    expected = infer_predictions(["--adapter", MODEL_REPO], images, pushed.root / "infer.jsonl", env=pushed.env)
    process, url = start_demo(["app.py"], pushed.root / "space.log", cwd=folder, env=pushed.env)
    try:
        client = gradio_client.Client(url, verbose=False)
        for image in images:
            prediction = client.predict([gradio_client.handle_file(str(image))], "", api_name="/read")[0]
            assert prediction == expected[image.name]
        # The page's examples are the card's sample lines (the test split, downloaded from the model repo).
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        config = opener.open(url + "config", timeout=30).read().decode("utf-8")
        samples = re.findall(r"\| !\[sample \d\]\(samples/\d\.png\) \| (.+) \|",
                             pushed.hub.repo_files(MODEL_REPO)["README.md"].decode())
        assert len(samples) == 2 and all(text in config for text in samples) and "sample-1.png" in config
    finally:
        stop(process)


def test_cli_pushes_a_private_space_with_a_given_pin(pushed):
    pin = "hindi-ocr[demo] @ git+https://example.org/me/hindi-ocr.git@" + "a" * 40
    done = run(["-m", "hindi_ocr.demo", "--adapter", MODEL_REPO, "--push_to_space", "test-user/private-demo",
                "--private", "--space_requirement", pin], pushed.env)
    assert done.stdout.strip() == f"Space pushed: {pushed.hub.endpoint}/spaces/test-user/private-demo"
    assert HfApi(endpoint=pushed.hub.endpoint, token=pushed.hub.token).space_info("test-user/private-demo").private
    files = pushed.hub.repo_files("test-user/private-demo", repo_type="space")
    assert files["requirements.txt"].decode().splitlines()[1] == pin
    assert files["app.py"] == pushed.hub.repo_files(SPACE, repo_type="space")["app.py"]


def test_a_space_for_the_shipped_reader_names_no_model(pushed):
    """With no model named, the Space serves the reader the package ships (hindi_ocr.reader), under its licence."""
    done = run(["-m", "hindi_ocr.demo", "--push_to_space", "test-user/reader-demo"], pushed.env)
    assert done.stdout.strip() == f"Space pushed: {pushed.hub.endpoint}/spaces/test-user/reader-demo"
    files = pushed.hub.repo_files("test-user/reader-demo", repo_type="space")
    assert files["app.py"].decode() == (
        '"""Gradio Space for the Hindi reader shipped with hindi-ocr: the demo page of hindi-ocr '
        '(python -m hindi_ocr.demo)."""\n\nfrom hindi_ocr.demo import main\n\n'
        "main(['--title', 'Hindi line OCR'])\n")
    readme = files["README.md"].decode()
    meta = front_matter(readme)
    assert meta["license"] == "apache-2.0" and not meta.get("models")
    assert "python -m hindi_ocr.demo\n```" in readme and "tiny Hindi reader shipped with hindi-ocr" in readme


def test_failed_space_push_says_how_to_retry(pushed):
    failure = pushed.hub.fail_next(r"/api/spaces/test-user/broken-demo/commit/", status=403, times=1)
    folder = pushed.root / "broken-space"
    done = run(["-m", "hindi_ocr.demo", "--adapter", MODEL_REPO, "--push_to_space", "test-user/broken-demo",
                "--space_dir", str(folder)], pushed.env, check=False)
    assert done.returncode == 1 and failure.hits == 1
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("push to test-user/broken-demo failed (HTTP 403")
    assert (f"Nothing is lost: the Space files (app.py, requirements.txt, README.md) are saved in {folder}. Retry the "
            f"upload with `hf upload test-user/broken-demo {folder} . --exclude '_*' --exclude 'checkpoint-*' "
            f"--repo-type space`, or rerun `python -m hindi_ocr.demo --adapter {MODEL_REPO} --push_to_space "
            "test-user/broken-demo`.") in message
    assert {p.name for p in folder.iterdir()} == SPACE_FILES
    # The folder now holds the files: writing a Space into it again is refused rather than overwriting them.
    before = (folder / "app.py").read_bytes()
    with pytest.raises(SystemExit) as refused:
        write_space(folder, {"app.py": "print('other')\n"})
    assert str(refused.value) == (f"--space_dir {folder} is not empty; give a new or empty folder so no file is "
                                  "overwritten")
    assert (folder / "app.py").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["-m", "hindi_ocr.demo", "--adapter", "{tmp}", "--push_to_space", "me/demo"],
     "--push_to_space needs the model on the Hub: --adapter {tmp} is not a Hub id."),
    (["-m", "hindi_ocr.demo", "--adapter", "me/model", "--private"],
     "--private only apply with --push_to_space USER/NAME"),
    (["train.py", "--model_name_or_path", "/nonexistent", "--push_demo_space"],
     "--push_demo_space publishes a Space that reads the model from the Hub: add --push_to_hub"),
])
def test_bad_space_flags_fail_fast(args, message, tmp_path):
    args, message = [a.replace("{tmp}", str(tmp_path)) for a in args], message.replace("{tmp}", str(tmp_path))
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]


def test_demo_space_id_needs_push_demo_space():
    args = SimpleNamespace(push_to_hub=True, push_demo_space=False, demo_space_id="me/page")
    with pytest.raises(SystemExit) as err:
        check_demo_space(args)
    assert str(err.value) == "--demo_space_id names the Space of --push_demo_space: add --push_demo_space"
    check_demo_space(SimpleNamespace(push_to_hub=True, push_demo_space=True, demo_space_id="me/page"))  # fine


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_project_requirement_pins_the_checkout_commit(tmp_path):
    (tmp_path / "hindi_ocr").mkdir()
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = hindi-ocr\n", encoding="utf-8")
    assert project_requirement(tmp_path) == f"hindi-ocr[demo]=={__version__}"  # not a git checkout
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "x")
    sha = git(tmp_path, "rev-parse", "HEAD")
    assert project_requirement(tmp_path) == f"hindi-ocr[demo]=={__version__}"  # no remote pip could reach
    git(tmp_path, "remote", "add", "origin", "git@github.com:me/hindi-ocr.git")
    assert project_requirement(tmp_path) == f"hindi-ocr[demo] @ git+https://github.com/me/hindi-ocr.git@{sha}"
    git(tmp_path, "remote", "set-url", "origin", "https://me:ghp_secret@github.com/me/hindi-ocr")
    assert project_requirement(tmp_path) == f"hindi-ocr[demo] @ git+https://github.com/me/hindi-ocr@{sha}"
    assert public_git_url("/srv/git/hindi-ocr") is None and public_git_url("file:///srv/hindi-ocr") is None
    assert public_git_url("ssh://git@example.org:2222/me/x.git") == "https://example.org/me/x.git"


def test_examples_come_from_the_card_of_a_local_run_too(pushed, tmp_path):
    from hindi_ocr.demo import card_examples

    card = (pushed.out / "README.md").read_text(encoding="utf-8")
    examples = card_examples(str(pushed.out), tmp_path)
    texts = re.findall(r"\| !\[sample \d\]\(samples/\d\.png\) \| (.+) \|", card)
    assert [text for _, text in examples] == texts and len(texts) == 2
    for number, (path, _) in enumerate(examples, start=1):
        assert Path(path).read_bytes() == (pushed.out / "samples" / f"{number}.png").read_bytes()
