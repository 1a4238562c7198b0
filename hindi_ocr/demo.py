"""Try a trained model in a browser: a local Gradio page, or the same page published as a Hugging Face Space.

    python -m hindi_ocr.demo                                             # the shipped Hindi reader
    python -m hindi_ocr.demo --adapter outputs/run1                      # http://127.0.0.1:7860
    python -m hindi_ocr.demo --adapter USER/got-ocr2-hindi-lora --push_to_space USER/got-ocr2-hindi-demo [--private]

Needs the demo extra: pip install -e ".[demo]" (Gradio). The page reads uploaded line images exactly as infer.py
does (same loading, same layout, same batched generation, same repetition stop), shows each line's confidence, CER and
the characters read wrong when given the reference text, and puts Tesseract's reading beside the model's when
Tesseract is installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from .checks import positive_int
from .examples import LINE_LAYOUTS

DEFAULT_HOST = "127.0.0.1"  # this machine only; a Space sets GRADIO_SERVER_NAME=0.0.0.0
DEFAULT_PORT = 7860
# Rendered when the model has no card with sample lines (a local run folder without test lines, a bare base).
EXAMPLE_LINES = ("नमस्ते दुनिया", "भारत एक विशाल देश है।", "किताब पढ़ो")
EXAMPLE_FONT = "Hind-Regular"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m hindi_ocr.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapter", help="LoRA adapter: a folder written by train.py or a Hub id")
    p.add_argument("--adapter_revision", default=None, help="branch, tag or commit of the adapter on the Hub")
    p.add_argument("--model_name_or_path", help="base GOT-OCR2, or a merged/fully fine-tuned model (default: the "
                                                "adapter's base; with no --adapter either, the shipped Hindi reader, "
                                                "python -m hindi_ocr.reader)")
    p.add_argument("--model_revision", default=None, help="branch, tag or commit of the model")
    p.add_argument("--line_layout", choices=LINE_LAYOUTS, help="default: what the adapter was trained with")
    p.add_argument("--batch_size", type=positive_int, default=8)
    p.add_argument("--max_new_tokens", type=positive_int, default=256)
    p.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--hub_token", default=None, help="token for private repos and pushes (default: logged-in token)")
    p.add_argument("--tesseract_cmd", help="the tesseract binary (default: $TESSERACT_CMD, else tesseract on PATH)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME") or DEFAULT_HOST,
                   help=f"address to serve on (default: $GRADIO_SERVER_NAME, else {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT") or DEFAULT_PORT),
                   help=f"port (default: $GRADIO_SERVER_PORT, else {DEFAULT_PORT})")
    p.add_argument("--title", default="Hindi line OCR", help="page title")
    p.add_argument("--push_to_space", metavar="USER/NAME",
                   help="instead of serving: write app.py, requirements.txt and README.md for a Gradio Space that "
                        "runs this page for the model, and upload them to the Space USER/NAME")
    p.add_argument("--private", action="store_true", help="with --push_to_space: create the Space private")
    p.add_argument("--space_requirement", metavar="PIP_SPEC",
                   help="with --push_to_space: how the Space installs this project (default: this checkout's git "
                        "remote at its commit, else hindi-ocr[demo]==<version>)")
    p.add_argument("--space_dir", help="with --push_to_space: where the Space files are written before the upload "
                                       "(default: a new temporary folder); must be empty or not exist")
    args = p.parse_args(argv)
    pushing_only = [flag for flag, value in (("--private", args.private), ("--space_dir", args.space_dir),
                                             ("--space_requirement", args.space_requirement)) if value]
    if pushing_only and not args.push_to_space:
        p.error(f"{', '.join(pushing_only)} only apply with --push_to_space USER/NAME")
    return args


SAMPLE_NAME = re.compile(r"^samples/[1-9][0-9]{0,3}\.png$")  # what card.write_samples writes, nothing else


def sample_file(source: str, name: str, revision: str | None = None, token: str | None = None) -> Path:
    """The file behind a card's sample row, only if it is one train.py writes: ``samples/N.png`` inside the model
    folder (resolved, so a symlink or ``..`` cannot leave it) or the Hub repo. A card is text anyone could have
    edited, and the demo copies and serves what it names."""
    if not SAMPLE_NAME.match(name):
        raise ValueError("not a samples/N.png file of the model")
    if not Path(source).is_dir():
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(source, name, revision=revision, token=token))
    samples = Path(source).resolve() / "samples"
    path = (Path(source) / name).resolve()
    if path.parent != samples or not path.is_file():
        raise ValueError(f"resolves to {path}, not a file in {samples}")
    return path


def card_examples(source: str, folder: Path, revision: str | None = None, token: str | None = None):
    """The sample lines of the model card train.py wrote (samples/N.png and their references), copied to folder."""
    from .card import card_samples
    from .card_reading import load_card

    card = load_card(source, revision, token)
    examples = []
    for number, (name, text) in enumerate(card_samples(card.text) if card else [], start=1):
        try:
            target = folder / f"sample-{number}.png"
            shutil.copyfile(sample_file(source, name, revision, token), target)
        except Exception as err:  # noqa: BLE001 - a missing or refused sample only costs an example
            logging.getLogger(__name__).warning("sample %s of %s skipped (%s)", name, source, err)
            continue
        examples.append((str(target), text))
    return examples


def rendered_examples(folder: Path, lines=EXAMPLE_LINES):
    from .render import devanagari_fonts, render_line

    face = devanagari_fonts(EXAMPLE_FONT)[0]
    examples = []
    for number, text in enumerate(lines, start=1):
        path = folder / f"line-{number}.png"
        render_line(text, face, size=32).save(path)
        examples.append((str(path), text))
    return examples


def example_lines(source: str, folder: Path, revision: str | None = None, token: str | None = None):
    """The card's sample lines, else lines rendered here: what the page offers to click."""
    return card_examples(source, folder, revision, token) or rendered_examples(folder)


def serve(args) -> None:
    from .compare import load_reader
    from .demo_ui import MAX_FILE_SIZE, LineDemo, build_app
    from .tesseract import TesseractUnavailable, locate

    try:
        import gradio  # noqa: F401 - fail before the model loads
    except ImportError:
        raise SystemExit('The demo needs Gradio: pip install -e ".[demo]" (or pip install "hindi-ocr[demo]")') from None
    if not (args.adapter or args.model_name_or_path):
        from .reader import reader_path

        args.model_name_or_path = str(reader_path())
    try:
        tesseract, note = locate(args.tesseract_cmd), ""
    except TesseractUnavailable as err:
        tesseract, note = None, str(err.code)
    reader = load_reader(args.model_name_or_path, args.adapter, revision=args.model_revision,
                         adapter_revision=args.adapter_revision, token=args.hub_token, dtype=args.dtype,
                         max_new_tokens=args.max_new_tokens, line_layout=args.line_layout)
    folder = Path(tempfile.mkdtemp(prefix="hindi-ocr-demo-"))
    source = args.adapter or args.model_name_or_path
    examples = example_lines(source, folder, args.adapter_revision if args.adapter else args.model_revision,
                             args.hub_token)
    app = build_app(LineDemo(reader, tesseract, note, args.batch_size), examples, title=args.title)
    print(f"serving {reader.engine} on http://{args.host}:{args.port}", flush=True)
    app.launch(server_name=args.host, server_port=args.port, allowed_paths=[str(folder)], show_error=True,
               max_file_size=MAX_FILE_SIZE)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    if args.push_to_space:
        from .space import push_demo_space

        url = push_demo_space(args.push_to_space, adapter=args.adapter, model=args.model_name_or_path,
                              revision=args.adapter_revision if args.adapter else args.model_revision,
                              token=args.hub_token, private=args.private, requirement=args.space_requirement,
                              folder=args.space_dir, title=args.title)
        print(f"Space pushed: {url}")
        return
    serve(args)


if __name__ == "__main__":
    main()
