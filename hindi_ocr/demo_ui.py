"""The browser demo's page and its one request: read uploaded line images as infer.py does, score them against an
optional reference, highlight the characters read wrong, and put Tesseract's reading beside them.

Why the request is plain Python (:meth:`LineDemo.read`) and Gradio is imported only in :func:`build_app`: the
reading, scoring and bad-upload handling are the parts that must be right, and they are tested without a server;
Gradio is an optional extra (``pip install -e ".[demo]"``).

Reading goes through :func:`hindi_ocr.compare.read_with_model`, the function behind ``infer.py``, so the demo and
``infer.py`` give the same text for the same image. A bad upload (not an image, a decompression bomb, an empty
file, no file) becomes a message on the page; it never raises into Gradio, so the server goes on serving.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .compare import Reader, read_with_model, read_with_tesseract, summary_table
from .inference import IMAGE_SUFFIXES, Line
from .report import align
from .rows import TOO_LARGE, check_image
from .scoring import tokenize

MAX_IMAGES = 16  # per request: a page of lines; more would hold the one model for everyone else
# A text line is a few megapixels at most (5000 x 300 is 1.5). Pillow only refuses past ~179 megapixels, and a
# 100-megapixel PNG can be a few kilobytes on disk: the page refuses big images before decoding them.
MAX_PIXELS = 8_000_000
MAX_FILE_SIZE = "10mb"  # Gradio refuses larger uploads before they are stored (Blocks.launch(max_file_size=...))
WRONG, EXTRA, MISSING = "read wrong", "extra", "missing"
COLORS = {WRONG: "#f87171", EXTRA: "#fbbf24", MISSING: "#93c5fd"}
FORMATS = ", ".join(sorted(s.lstrip(".").upper() for s in IMAGE_SUFFIXES))
NO_UPLOAD = f"Upload one or more line images ({FORMATS}) first, or click one of the examples below."
API_NAME = "read"  # the endpoint gradio_client calls: Client(url).predict(files, reference, api_name="/read")


@dataclass
class Answer:
    """What the page shows after one click (also the API's return value, in this order)."""

    prediction: str = ""  # the model's reading, one line per readable image, in upload order
    tesseract: str = ""  # Tesseract's, the same way ("" when it is not installed: the page says so)
    highlighted: list = field(default_factory=list)  # (text, label) pieces: label None, WRONG, EXTRA or MISSING
    scores: str = ""  # Markdown: the engine | CER | ... table of infer.py --compare_tesseract
    messages: str = ""  # Markdown: what was wrong with the upload or the reference
    confidence: str = ""  # Markdown: each line's confidence and whether the repetition stop ended it

    def as_tuple(self) -> tuple:
        return self.prediction, self.tesseract, self.highlighted, self.scores, self.messages, self.confidence


def confidence_table(lines: Sequence[Line], generated: Sequence) -> str:
    """image | confidence | repetition stop, one row per line read (hindi_ocr.generation.Generated)."""
    rows = [f"| {Path(line.image).name} | {g.confidence:.3f} | {'yes: it repeated itself' if g.repetition else 'no'} |"
            for line, g in zip(lines, generated)]
    return "| image | confidence | repetition stop |\n|---|---|---|\n" + "\n".join(rows) + (
        "\n\nConfidence: the geometric mean of the probabilities of the tokens the model chose (0-1); low values mark "
        "lines to check.")


def highlight(prediction: str, reference: str) -> list[tuple[str, str | None]]:
    """The prediction as (text, label) pieces, aligned character by character with the reference exactly as CER
    counts (normalised code points, jiwer's alignment): substituted characters are WRONG, invented ones EXTRA, and
    reference characters the model dropped are put back in place labelled MISSING."""
    pieces = []
    for op, ref, pred in align(tokenize(prediction, "cer"), tokenize(reference, "cer")):
        text, label = {"equal": (pred, None), "substitute": (pred, WRONG), "insert": (pred, EXTRA),
                       "delete": (ref, MISSING)}[op]
        if pieces and pieces[-1][1] == label:
            pieces[-1] = (pieces[-1][0] + text, label)
        else:
            pieces.append((text, label))
    return pieces


def upload_problem(path: str) -> str | None:
    """Why an uploaded file cannot be read as a line image, in words for the page; None when it can."""
    if not os.path.isfile(path):
        return "the upload did not arrive; try again"
    if os.path.getsize(path) == 0:
        return "the file is empty (0 bytes)"
    problem = (check_image(path, mode="header") or _too_many_pixels(path)
               or check_image(path, mode="decode"))  # Pillow's decompression-bomb limit stays on
    if problem is None:
        return None
    if problem.startswith("UnidentifiedImageError"):
        return f"not an image Pillow can read; upload {FORMATS}"
    return problem


def _too_many_pixels(path: str) -> str | None:
    """From the header alone: an image over MAX_PIXELS is refused before it is decoded."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    if width * height <= MAX_PIXELS:
        return None
    return (f"{TOO_LARGE}: {width} x {height} pixels is over the demo's limit of {MAX_PIXELS / 1e6:g} megapixels; "
            "crop the line or downscale it")


class LineDemo:
    """The model (and Tesseract when installed) behind the page; :meth:`read` answers one click."""

    def __init__(self, reader: Reader, tesseract=None, tesseract_note: str = "", batch_size: int = 8):
        self.reader, self.tesseract, self.batch_size = reader, tesseract, batch_size
        self.tesseract_note = tesseract_note or (tesseract.engine if tesseract else "")

    def read(self, files: Sequence | None, reference: str | None = "") -> tuple:
        """``files``: paths (or objects with ``.name``) of the uploads; ``reference``: one line per upload."""
        try:
            return self._read(files, reference).as_tuple()
        except Exception as err:  # noqa: BLE001 - one bad request must not take the page down for the next
            return Answer(messages=f"**Could not read the upload:** {type(err).__name__}: {err}").as_tuple()

    def _read(self, files, reference) -> Answer:
        paths = [getattr(f, "name", f) for f in (files or []) if f]
        if not paths:
            return Answer(messages=NO_UPLOAD)
        notes = []
        if len(paths) > MAX_IMAGES:
            notes.append(f"Only the first {MAX_IMAGES} of {len(paths)} images were read; upload the rest next.")
            paths = paths[:MAX_IMAGES]
        references = [text.strip() for text in (reference or "").strip().splitlines()]
        if references and len(references) != len(paths):
            notes.append(f"The reference has {len(references)} line(s) for {len(paths)} image(s): give one line per "
                         "image, in the order of the uploads. No CER this time.")
            references = []
        lines = []
        for i, path in enumerate(paths):
            problem = upload_problem(path)
            if problem:
                notes.append(f"**{Path(path).name}**: {problem}.")
            else:
                lines.append(Line(path, references[i] if references else None))
        if not lines:
            return Answer(messages="\n\n".join(notes + [NO_UPLOAD]))
        readings = [read_with_model(self.reader, lines, self.batch_size)]
        if self.tesseract is not None:
            readings.append(read_with_tesseract(self.tesseract, lines))
        answer = Answer(prediction="\n".join(readings[0].predictions),
                        tesseract="\n".join(readings[1].predictions) if self.tesseract else "",
                        messages="\n\n".join(notes), confidence=confidence_table(lines, readings[0].generated))
        if references:
            for i, (line, predicted) in enumerate(zip(lines, readings[0].predictions)):
                answer.highlighted += ([("\n", None)] if i else []) + highlight(predicted, line.reference)
            answer.scores = summary_table(readings, lines)
        else:
            answer.scores = "Type the reference text (one line per image) to see CER and the characters read wrong."
        return answer


def build_app(demo: LineDemo, examples: Sequence[tuple[str, str]] = (), title: str = "Hindi line OCR"):
    """The Gradio page: uploads, reference and messages on the left, the two readings on the right, the highlighted
    errors and the scores below, then the examples."""
    import gradio as gr

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"# {title}\n\nReads printed Hindi (Devanagari) text lines with `{demo.reader.engine}`. Upload "
                    "line images, optionally type what they say (one line per image), and press **Read**.")
        with gr.Row():
            with gr.Column():
                files = gr.File(label="Line images", file_count="multiple", elem_id="upload")
                reference = gr.Textbox(label="Reference text (optional, one line per image)", lines=2,
                                       elem_id="reference")
                button = gr.Button("Read", variant="primary", elem_id="read")
                messages = gr.Markdown(elem_id="messages")
            with gr.Column():
                prediction = gr.Textbox(label="GOT-OCR2 reading", lines=2, elem_id="prediction", buttons=["copy"])
                tesseract = gr.Textbox(label="Tesseract reading", lines=2, elem_id="tesseract",
                                       visible=demo.tesseract is not None)
                gr.Markdown(_tesseract_note(demo), elem_id="tesseract-note")
        highlighted = gr.HighlightedText(label="Characters read wrong (against the reference)", color_map=COLORS,
                                         show_legend=True, combine_adjacent=True, elem_id="highlighted")
        scores = gr.Markdown(elem_id="scores")
        confidence = gr.Markdown(elem_id="confidence")
        if examples:
            gr.Examples([[[path], text] for path, text in examples], inputs=[files, reference],
                        label="Example lines", cache_examples=False)
        outputs = [prediction, tesseract, highlighted, scores, messages, confidence]  # the order of Answer.as_tuple()
        button.click(demo.read, inputs=[files, reference], outputs=outputs, api_name=API_NAME)
    return app


def _tesseract_note(demo: LineDemo) -> str:
    if demo.tesseract is not None:
        return f"Beside it: {demo.tesseract.engine}."
    return f"**Tesseract is not shown:** {demo.tesseract_note}"
