"""A Hugging Face Space that runs the demo page for a model on the Hub: ``app.py`` (one call into
:mod:`hindi_ocr.demo`), ``requirements.txt`` (this project pinned to a commit or version), ``packages.txt``
(Tesseract, so the page shows it side by side) and a README whose metadata makes it a Gradio Space linked to the
model.

Why the Space installs this project instead of carrying a copy of its code: the page then runs the very reading
code of the pinned commit, and a fix reaches the Space by pushing it again with a newer pin.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData, constants

from . import __version__
from .card import TAGS, UNKNOWN_LICENSE, demo_space_id
from .reader import READER_LICENSE
from .card_reading import base_license, hub_id
from .hub import push_with_retries

logger = logging.getLogger(__name__)

PROJECT = "hindi-ocr[demo]"
TESTED_GRADIO = "6.31.0"  # sdk_version when Gradio is not installed where the Space is written (train.py)
SPACE_FILES = ("app.py", "requirements.txt", "packages.txt", "README.md")
_SCP_URL = re.compile(r"^[\w.-]+@([\w.-]+):(.+)$")  # git@github.com:user/repo.git


def public_git_url(url: str) -> str | None:
    """An https URL pip can clone from, without credentials; None for local paths and unknown schemes."""
    url = url.strip()
    scp = _SCP_URL.match(url)
    if scp:
        return f"https://{scp.group(1)}/{scp.group(2)}"
    match = re.match(r"^(?:https?|ssh|git)://(?:[^@/]*@)?([^/]+)(/.+)$", url)
    if not match:
        return None
    host = match.group(1).split(":")[0] if url.startswith("ssh://") else match.group(1)
    return f"https://{host}{match.group(2)}"


def project_requirement(root: Path | None = None) -> str:
    """How the Space installs this project: the git checkout it runs from, at its commit, when that checkout has a
    remote pip can reach; else this version from PyPI (a warning says how to pin something else)."""
    root = Path(root or Path(__file__).resolve().parent.parent)

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    if (root / "setup.cfg").is_file() and (root / "hindi_ocr").is_dir() and git("rev-parse", "--show-toplevel"):
        commit, url = git("rev-parse", "HEAD"), public_git_url(git("remote", "get-url", "origin"))
        if commit and url:
            if git("status", "--porcelain", "--untracked-files=no"):
                logger.warning("the checkout at %s has uncommitted changes; the Space installs commit %s without "
                               "them", root, commit)
            return f"{PROJECT} @ git+{url}@{commit}"
    logger.warning("no git remote to pin: requirements.txt installs %s==%s from PyPI; give --space_requirement "
                   "'hindi-ocr[demo] @ git+https://github.com/YOU/hindi-ocr@COMMIT' to pin your fork instead",
                   PROJECT, __version__)
    return f"{PROJECT}=={__version__}"


def gradio_version() -> str:
    try:
        import gradio

        return gradio.__version__
    except ImportError:
        return TESTED_GRADIO


def space_files(model_id: str, *, adapter: bool, base: str | None, revision: str | None, requirement: str,
                title: str, licence: dict | None = None) -> dict[str, str]:
    """The Space's files by name: the page for ``model_id`` (an adapter on ``base``, or a standalone model);
    ``licence``: the model card's (:func:`hindi_ocr.card_reading.base_license` of ``model_id``)."""
    flag = "--adapter" if adapter else "--model_name_or_path"
    revision_flag = "--adapter_revision" if adapter else "--model_revision"
    argv = ([flag, model_id] if model_id else []) + ([revision_flag, revision] if revision else []) + ["--title", title]
    name = model_id or "the Hindi reader shipped with hindi-ocr"
    named = f" {flag} {model_id}" if model_id else ""
    app = (f'"""Gradio Space for {name}: the demo page of hindi-ocr (python -m hindi_ocr.demo)."""\n\n'
           "from hindi_ocr.demo import main\n\n"
           f"main({argv!r})\n")
    requirements = (f"# hindi-ocr, pinned: the reading code this Space runs. Gradio comes from sdk_version in "
                    f"README.md.\n{requirement}\n")
    models = ([model_id] if model_id else []) + ([hub_id(base)] if adapter and hub_id(base) else [])
    licence = licence or {"license": UNKNOWN_LICENSE}
    data = SpaceCardData(title=title, sdk="gradio", sdk_version=gradio_version(),
                         python_version=f"{sys.version_info.major}.{sys.version_info.minor}", app_file="app.py",
                         **licence, models=models, tags=list(TAGS), emoji="📜", colorFrom="indigo",
                         colorTo="blue", pinned=False, suggested_hardware="t4-small",
                         short_description="Read printed Hindi text lines (GOT-OCR2)")
    url = f"{constants.ENDPOINT}/{model_id}"
    on_base = f" on `{hub_id(base)}`" if adapter and hub_id(base) else ""
    model_link = f"[{model_id}]({url})" if model_id else "the tiny Hindi reader shipped with hindi-ocr"
    body = (
        f"# {title}\n\nReads one printed line of Hindi (Devanagari) text per image with {model_link}"
        f"{on_base}. Upload line images, type their text to see CER and the "
        "characters read wrong, and compare with Tesseract (`hin`, single-line mode).\n\n"
        "## Hardware\n\nThe full-size GOT-OCR2 is slow on CPUs: on 2 CPU cores, like the free CPU basic hardware, "
        "generating 30 tokens took about a minute with about 7 GB of RAM (hindi-ocr's BENCHMARKS.md, fp32). The "
        "metadata suggests a T4 GPU (`t4-small`); choose the hardware under Settings → Space hardware.\n\n"
        "If the model is private, add a secret `HF_TOKEN` (a read token) under Settings → Variables and secrets.\n\n"
        "## Run it on your own machine\n\n"
        f"```bash\npip install \"{requirement}\"\npython -m hindi_ocr.demo{named}\n```\n\n"
        "Written by `python -m hindi_ocr.demo --push_to_space` (or `train.py --push_demo_space`).\n"
    )
    card = SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    return {"app.py": app, "requirements.txt": requirements, "packages.txt": "tesseract-ocr\ntesseract-ocr-hin\n",
            "README.md": str(card)}


def write_space(folder: Path, files: dict[str, str], replace: bool = False) -> Path:
    """The files into ``folder``; a folder holding anything else is refused unless ``replace`` (our own folder)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not replace:
        raise SystemExit(f"--space_dir {folder} is not empty; give a new or empty folder so no file is overwritten")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def push_demo_space(space_id: str, *, adapter: str | None = None, model: str | None = None,
                    revision: str | None = None, token: str | None = None, private: bool | None = None,
                    requirement: str | None = None, folder: str | Path | None = None, replace: bool = False,
                    title: str = "Hindi line OCR") -> str:
    """Write the Space files for a model on the Hub and upload them; returns the Space's URL."""
    model_id = adapter or model
    if model_id and not hub_id(model_id):
        flag = "--adapter" if adapter else "--model_name_or_path"
        raise SystemExit(f"--push_to_space needs the model on the Hub: {flag} {model_id} is not a Hub id. Push it "
                         "first (train.py --push_to_hub, or infer.py --merge_lora DIR --push_to_hub) and give its id.")
    if not hub_id(space_id):
        raise SystemExit(f"--push_to_space {space_id}: give the Space as USER/NAME")
    from huggingface_hub import HfApi

    from .modeling import adapter_base_model

    api = HfApi(token=token)
    if adapter:
        base = adapter_base_model(adapter, revision, token)  # exits with a clear message when unreachable
        if not hub_id(base):
            logger.warning("the adapter's base model %s is not a Hub id: the Space will only start where that path "
                           "exists; train from the base's Hub id (e.g. stepfun-ai/GOT-OCR-2.0-hf) for a Space that "
                           "runs on the Hub", base)
    else:
        base = None
        if model and not api.file_exists(model, "config.json", revision=revision):
            raise SystemExit(f"--model_name_or_path {model}: no config.json on the Hub (wrong id, or private "
                             "without a token?)")
    files = space_files(model_id, adapter=bool(adapter), base=base, revision=revision,
                        requirement=requirement or project_requirement(), title=title,
                        licence=base_license(model_id, token) if model_id else {"license": READER_LICENSE})
    folder = write_space(Path(folder) if folder else Path(tempfile.mkdtemp(prefix="hindi-ocr-space-")), files,
                         replace=replace)

    def push():
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.upload_folder(repo_id=space_id, repo_type="space", folder_path=str(folder),
                          allow_patterns=list(SPACE_FILES), commit_message=f"Demo page for {model_id or 'the shipped reader'}")

    flag = "--adapter" if adapter else "--model_name_or_path"
    named = f" {flag} {model_id}" if model_id else ""
    rerun = f", or rerun `python -m hindi_ocr.demo{named} --push_to_space {space_id}`"
    push_with_retries(push, space_id, str(folder), what="the Space files (app.py, requirements.txt, README.md)",
                      rerun=rerun, repo_type="space")
    return f"{constants.ENDPOINT}/spaces/{space_id}"


def publish_demo_space(trainer) -> str | None:
    """End of ``train.py --push_to_hub --push_demo_space``: the Space for the model just pushed, whose card
    already links to it (hindi_ocr.hub.demo_section); files kept in output_dir/_demo_space (not pushed with the
    model: the Trainer leaves ``_*`` out)."""
    args = trainer.args
    repo_id = getattr(trainer, "hub_model_id", None) or args.hub_model_id
    space_id = demo_space_id(args, repo_id) if args.push_to_hub else None
    if not space_id or not trainer.is_world_process_zero():
        return None
    is_adapter = hasattr(trainer.model, "peft_config")
    url = push_demo_space(space_id, adapter=repo_id if is_adapter else None, model=None if is_adapter else repo_id,
                          revision=args.hub_revision, token=args.hub_token, private=args.hub_private_repo,
                          folder=Path(args.output_dir) / "_demo_space", replace=True)
    logger.info("demo Space pushed: %s", url)
    return url
