"""Reading lines with a trained model: input discovery, batched greedy generation (:mod:`hindi_ocr.generation`),
output files."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from PIL import Image

from .examples import OcrExampleBuilder
from .generation import Generated, generate_lines
from .pages import one_line, page_budget, settle_pages

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
SETTINGS_FILE = "hindi_ocr.json"  # training-time choices that reading must repeat (line layout, lines per page)


@dataclass
class Line:
    image: str  # a file, or the row id of an image held by ``source``
    reference: str | None = None
    source: object | None = None  # an image not in a file (a dataset row): anything with ``open()``


def lines_from_paths(paths: Sequence[str]) -> list[Line]:
    """Image files as given, and the images inside folders (sorted by name); each checked before any model loads."""
    from .rows import check_image

    lines = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            lines += [Line(str(p)) for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        elif path.is_file():
            lines.append(Line(str(path)))
        else:
            raise SystemExit(f"{raw}: no such image or folder")
    for line in lines:
        problem = check_image(line.image)
        if problem:
            raise SystemExit(f"{line.image}: not a readable image ({problem}); remove it from the arguments")
    return lines


def lines_from_data_dir(data_dir: str) -> list[Line]:
    """Every row of a seed-layout folder (data.csv + images), with its transcription as reference."""
    from .rows import InvalidRowError, read_csv_rows

    try:
        return [Line(row.image_path, row.text) for row in read_csv_rows(data_dir)]
    except (InvalidRowError, FileNotFoundError) as err:
        raise SystemExit(f"--data_dir {data_dir}: {err}") from None


def generate_for_images(model, builder: OcrExampleBuilder, images: Sequence[Image.Image], **generate_kwargs
                        ) -> list[Generated]:
    """One batched greedy generation over images (lines, or composed pages): texts, repetition flags, confidences."""
    inputs = builder.prompt_inputs(images)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    return generate_lines(model, inputs, builder.processor.tokenizer, **generate_kwargs)


def read_images(model, builder: OcrExampleBuilder, images: Sequence[Image.Image], **generate_kwargs) -> list[str]:
    """The decoded texts of :func:`generate_for_images`."""
    return [g.text for g in generate_for_images(model, builder, images, **generate_kwargs)]


def open_line(line: Line) -> Image.Image:
    # load() reads the pixels and closes the file; the builder makes them upright RGB (to_rgb) once
    if line.source is not None:
        return line.source.open()
    image = Image.open(line.image)
    image.load()
    return image


def read_lines(model, builder: OcrExampleBuilder, lines: Sequence[Line], batch_size: int = 8,
               lines_per_page: int = 1, max_new_tokens: int | None = None, stats: dict | None = None,
               repetition_stop: bool = True) -> Iterator[Generated]:
    """Readings of lines in order, one per line, decoding each batch's images only when it is its turn.

    With ``builder.pages`` the lines are read ``lines_per_page`` to a page, ``batch_size`` pages per generation
    (N lines given N x (``max_new_tokens`` + 1) new tokens, :func:`hindi_ocr.pages.page_budget`); a page whose
    output has another number of lines is read again one line per page (``stats["page_rereads"]`` counts them,
    ``stats["pages"]`` all pages). A line read on a page gets the page's repetition flag and confidence.
    ``repetition_stop=False``: generate to the token limit even in a loop (benchmarks that time a fixed number of
    tokens).
    """
    if builder.pages is None:
        for start in range(0, len(lines), batch_size):
            images = [open_line(line) for line in lines[start : start + batch_size]]
            for g in generate_for_images(model, builder, images, stop=repetition_stop):
                yield replace(g, text=one_line(g.text))
        return
    alone_budget = {"stop": repetition_stop} | ({} if max_new_tokens is None else {"max_new_tokens": max_new_tokens})
    stats = stats if stats is not None else {}
    stats.setdefault("pages", 0)
    stats.setdefault("page_rereads", 0)
    alone: list[Generated] = []
    alone_images: set[int] = set()  # the line images settle_pages had read again, one per page

    def read_alone(images):
        out = []
        for start in range(0, len(images), batch_size):
            pages = [builder.pages.compose([image]) for image in images[start : start + batch_size]]
            out += generate_for_images(model, builder, pages, **alone_budget)
        alone.extend(out)
        alone_images.update(map(id, images))
        return [g.text for g in out]

    per_batch = batch_size * lines_per_page
    for start in range(0, len(lines), per_batch):
        batch = lines[start : start + per_batch]
        groups = [[open_line(line) for line in batch[i : i + lines_per_page]] for i in range(0, len(batch), lines_per_page)]
        most = max(map(len, groups))
        budget = {"stop": repetition_stop}
        if max_new_tokens is not None:
            budget["max_new_tokens"] = max_new_tokens if most == 1 else page_budget(most, max_new_tokens)
        outputs = generate_for_images(model, builder, [builder.pages.compose(group) for group in groups], **budget)
        alone.clear()
        alone_images.clear()
        settled, rereads = settle_pages([g.text for g in outputs], groups, read_alone)
        stats["pages"] += len(groups)
        stats["page_rereads"] += rereads
        reread = iter(alone)
        for page, group, output in zip(settled, groups, outputs):
            again = id(group[0]) in alone_images  # settle_pages read this page's lines alone
            for text in page:
                yield replace(next(reread) if again else output, text=text)


def write_predictions(path: str, records: Iterable[dict]) -> None:
    """JSONL (``.jsonl``/``.json``), CSV (``.csv``) or parquet by the file's extension, every field of the records."""
    from .prediction_files import write_all

    write_all(path, list(records))


def save_settings(output_dir: str, line_layout: str, lines_per_page: int = 1) -> None:
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    settings = {"line_layout": line_layout, "lines_per_page": lines_per_page}
    (Path(output_dir) / SETTINGS_FILE).write_text(json.dumps(settings) + "\n", encoding="utf-8")


def load_settings(source: str | None, revision: str | None = None, token: str | None = None) -> dict:
    """Settings saved beside an adapter or model, locally or on the Hub; empty when the model has none (a model not
    trained here). A Hub that cannot be asked (offline, no connection, no access) stops the reading instead: guessing
    "squash, one line per page" would read a page-trained model in the wrong format."""
    if not source:
        return {}
    path = Path(source) / SETTINGS_FILE
    if path.is_file() or Path(source).is_dir():
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        path = Path(hf_hub_download(source, SETTINGS_FILE, revision=revision, token=token))
    except RemoteEntryNotFoundError:  # the repo answered: it has no such file
        return {}
    except Exception as error:  # noqa: BLE001 - offline, unreachable, no access: the same question left open
        cached = try_to_load_from_cache(source, SETTINGS_FILE, revision=revision)
        if isinstance(cached, str):
            return json.loads(Path(cached).read_text(encoding="utf-8"))
        if cached is not None:  # an earlier download found the repo without it
            return {}
        raise SystemExit(f"{source}: could not read its {SETTINGS_FILE} (the line layout and lines per page it was "
                         f"trained with) from the Hub ({type(error).__name__}: {error}); check the connection and "
                         "the token (hf auth login, HF_TOKEN), or read from a local copy of the folder") from None
    return json.loads(path.read_text(encoding="utf-8"))
