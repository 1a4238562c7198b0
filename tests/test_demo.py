"""The demo page (``python -m hindi_ocr.demo``): a real headless Chromium uploads a rendered line and reads the
page; gradio_client calls the same endpoint, with good and bad uploads; the request handler without a server.

The model is the project's tiny GOT-OCR2 with its language-model weights scaled up ("loud"): at the library's
small init its greedy reading is the same run of newlines for every image, which a page showing nothing would
match; scaled, it writes a different string of Devanagari and Latin for each image, so "the page shows what
infer.py reads" is a real comparison. The browser is Debian's ``chromium`` (apt-get install chromium; .ci/run
installs it), driven by Playwright's Python package with ``executable_path`` (Playwright's own browser download is
not used).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client", reason='the demo extra is not installed: pip install -e ".[demo]"')

from hindi_ocr.compare import load_reader  # noqa: E402
from hindi_ocr.demo import EXAMPLE_LINES, rendered_examples  # noqa: E402
from hindi_ocr.demo_ui import EXTRA, MISSING, NO_UPLOAD, WRONG, LineDemo, highlight  # noqa: E402
from hindi_ocr.render import write_line_folder  # noqa: E402
from hindi_ocr.scoring import score, tokenize  # noqa: E402
from hindi_ocr.tesseract import TesseractUnavailable, locate  # noqa: E402
from demo_helpers import REPO, infer_predictions, local_env, loud_tiny_model, start_demo, stop  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run "
                                           "installs it)")
LINES = ["सूरज और पानी", "किताब पढ़ो"]
MAX_NEW_TOKENS = "20"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    model = loud_tiny_model(root / "loud-tiny")
    data = write_line_folder(root / "lines", LINES, size=32)
    images = [data / "output_images" / f"{i}.png" for i in range(len(LINES))]
    (root / "examples").mkdir()
    example = Path(rendered_examples(root / "examples")[0][0])  # what the page offers when there is no card
    predicted = infer_predictions(["--model_name_or_path", str(model), "--max_new_tokens", MAX_NEW_TOKENS],
                                  images + [example], root / "infer.jsonl")
    assert len(set(predicted.values())) == 3 and all(p.strip() for p in predicted.values())  # a loud model
    try:
        tesseract = locate()
    except TesseractUnavailable:
        tesseract = None
    return root, model, images, predicted, tesseract


@pytest.fixture(scope="module")
def server(setup):
    root, model = setup[0], setup[1]
    process, url = start_demo(["-m", "hindi_ocr.demo", "--model_name_or_path", str(model), "--max_new_tokens",
                               MAX_NEW_TOKENS], root / "demo.log")
    yield url
    stop(process)


def uploaded(page, name: str) -> None:
    """Wait until the upload reached the server: the file's download link then points at the server's copy."""
    from playwright.sync_api import expect

    link = page.locator(f'#upload a[data-testid="download-link"][download="{name}"]')
    expect(link).to_have_attribute("href", re.compile(r"/gradio_api/file="))


@needs_chromium
def test_browser_upload_shows_infer_prediction_cer_and_highlights(setup, server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _, _, images, predicted, tesseract = setup
    expected = predicted["0.png"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])  # root in CI: no sandbox
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)  # waits, not assertions on time: the CPU is shared and slow
            expect.set_options(timeout=120_000)
            page.goto(server)
            page.locator("#upload input[type=file]").set_input_files(str(images[0]))
            uploaded(page, "0.png")
            page.locator("#reference textarea").fill(LINES[0])
            page.locator("#read").click()
            shown = page.locator("#prediction textarea")
            expect(shown).not_to_have_value("")
            assert shown.input_value() == expected
            cer = score([expected], [LINES[0]])["cer"]
            expect(page.locator("#scores")).to_contain_text(f"{cer:.4f}")
            expect(page.locator("#confidence")).to_contain_text("0.png")
            highlighted = page.locator("#highlighted").inner_text()
            pieces = highlight(expected, LINES[0])
            # The marked characters are the CER's edits: substituted + inserted + deleted = CER x reference length.
            marked = sum(len(text) for text, label in pieces if label)
            assert marked == round(cer * len(tokenize(LINES[0], "cer"))) > 0, pieces
            for text, label in pieces:  # every piece is on the page, and each error class with its legend
                if text.strip():
                    assert text.strip() in highlighted, (text, highlighted)
                if label:
                    assert label in highlighted
            if tesseract:
                expect(page.locator("#tesseract textarea")).to_have_value("\n".join(tesseract.read([str(images[0])])))
            else:
                expect(page.locator("#tesseract-note")).to_contain_text("Tesseract is not shown")
            page.screenshot(path=tmp_path / "demo.png", full_page=True)
            # A file that is not an image: a message on the page, and the page goes on reading.
            (tmp_path / "notes.txt").write_text("not a picture", encoding="utf-8")
            page.goto(server)
            page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "notes.txt"))
            uploaded(page, "notes.txt")
            page.locator("#read").click()
            expect(page.locator("#messages")).to_contain_text("notes.txt: not an image Pillow can read")
            page.screenshot(path=tmp_path / "bad-upload.png", full_page=True)
            # The first preloaded example (a line rendered by the demo: the tiny model has no card) reads the same.
            page.goto(server)
            page.get_by_text("line-1.png").click()
            expect(page.locator("#reference textarea")).to_have_value(EXAMPLE_LINES[0])
            page.locator("#read").click()
            expect(page.locator("#prediction textarea")).to_have_value(predicted["line-1.png"])
        finally:
            browser.close()
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_client_reads_two_lines_like_infer(setup, server):
    root, _, images, predicted, tesseract = setup
    client = gradio_client.Client(server, verbose=False)
    prediction, tesseract_text, highlighted, scores, messages, confidence = client.predict(
        [gradio_client.handle_file(str(p)) for p in images], "\n".join(LINES), api_name="/read")
    assert prediction == predicted["0.png"] + "\n" + predicted["1.png"]
    assert messages == ""
    # each line's confidence as infer.py wrote it (4 decimals there, 3 here), no repetition stop in 20 tokens
    infer_confidence = {Path(r["image"]).name: r["confidence"] for r in map(json.loads, open(root / "infer.jsonl"))}
    rows = [row.split(" | ") for row in confidence.splitlines()[2:4]]
    assert [(name.lstrip("| "), flag) for name, _, flag in rows] == [("0.png", "no |"), ("1.png", "no |")]
    for name, value, _ in rows:
        assert abs(float(value) - infer_confidence[name.lstrip("| ")]) <= 6e-4
    cer = score([predicted["0.png"], predicted["1.png"]], LINES)["cer"]  # corpus CER over both lines
    assert scores.splitlines()[2].split(" | ")[1] == f"{cer:.4f}"
    expected = []  # both lines' pieces, neighbours with the same label joined as the page joins them
    pieces = highlight(predicted["0.png"], LINES[0]) + [("\n", None)] + highlight(predicted["1.png"], LINES[1])
    for text, label in pieces:
        if expected and expected[-1][1] == label:
            expected[-1] = (expected[-1][0] + text, label)
        else:
            expected.append((text, label))
    assert [(piece["token"], piece["class_or_confidence"]) for piece in highlighted] == expected  # text and labels
    if tesseract:
        assert tesseract_text == "\n".join(tesseract.read([str(p) for p in images]))
        assert scores.splitlines()[3].startswith(f"| {tesseract.engine} |")


def test_client_bad_uploads_get_messages_and_the_server_goes_on(setup, server, tmp_path):
    from test_bad_input import bomb_png

    _, _, images, predicted, _ = setup
    (tmp_path / "notes.txt").write_text("not a picture", encoding="utf-8")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "huge.png").write_bytes(bomb_png(40_000, 40_000))
    client = gradio_client.Client(server, verbose=False)
    handle = gradio_client.handle_file
    for name, message in [("notes.txt", "not an image Pillow can read"), ("empty.png", "the file is empty (0 bytes)"),
                          ("huge.png", "too large for a text line")]:
        prediction, _, _, scores, messages, _ = client.predict([handle(str(tmp_path / name))], "",
                                                               api_name="/read")
        assert (prediction, scores) == ("", "")
        assert messages.startswith(f"**{name}**: {message}") and messages.endswith(NO_UPLOAD), messages
    assert client.predict([], "", api_name="/read")[4] == NO_UPLOAD
    # A valid 100-megapixel PNG of a few kB (under Pillow's bomb error, over its warning): refused from its header,
    # named; and a file over the upload size limit never reaches the handler. The next request is served.
    (tmp_path / "vast.png").write_bytes(white_png(10_000, 10_000))
    assert (tmp_path / "vast.png").stat().st_size < 50_000
    prediction, *_, messages, _ = client.predict([handle(str(tmp_path / "vast.png"))], "", api_name="/read")
    assert prediction == "" and messages.startswith(
        "**vast.png**: too large for a text line: 10000 x 10000 pixels is over the demo's limit of 8 megapixels; "
        "crop the line or downscale it."), messages
    (tmp_path / "heavy.png").write_bytes(b"\0" * (11 * 1024 * 1024))  # over MAX_FILE_SIZE (10 MB)
    with pytest.raises(Exception, match="(?i)file.*(too large|size)|413"):
        client.predict([handle(str(tmp_path / "heavy.png"))], "", api_name="/read")
    assert client.predict([handle(str(images[0]))], "", api_name="/read")[0] == predicted["0.png"]
    # A bad file among good ones: the good one is read, the bad one named; then the next request is served.
    prediction, _, _, _, messages, _ = client.predict([handle(str(tmp_path / "huge.png")), handle(str(images[1]))],
                                                      "", api_name="/read")
    assert prediction == predicted["1.png"] and messages.startswith("**huge.png**: too large for a text line")
    assert client.predict([handle(str(images[0]))], "", api_name="/read")[0] == predicted["0.png"]


def white_png(width: int, height: int) -> bytes:
    """A complete, valid 1-bit white PNG: megapixels that compress to almost nothing on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" + b"\xff" * ((width + 7) // 8)
    body = (chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + body


def test_reference_lines_must_match_uploads(setup, server):
    _, _, images, predicted, _ = setup
    client = gradio_client.Client(server, verbose=False)
    prediction, _, highlighted, _, messages, _ = client.predict([gradio_client.handle_file(str(images[0]))],
                                                                "\n".join(LINES), api_name="/read")
    assert prediction == predicted["0.png"] and highlighted in ([], None)
    assert messages == ("The reference has 2 line(s) for 1 image(s): give one line per image, in the order of the "
                        "uploads. No CER this time.")


def test_highlight_marks_substituted_extra_and_missing_characters():
    assert highlight("अबग", "अकग") == [("अ", None), ("ब", WRONG), ("ग", None)]
    assert highlight("अबकग", "अबग") == [("अब", None), ("क", EXTRA), ("ग", None)]
    dropped = [("नमस्ते दुन", None), ("ि", MISSING), ("य", None), ("ा", MISSING)]
    assert highlight("नमस्ते दुनय", "नमस्ते दुनिया") == dropped
    assert highlight(" नमस्ते\u200d ", "नमस्ते") == [("नमस्ते", None)]  # normalised as CER is: no error


def test_without_tesseract_the_page_says_why(setup):
    root, model, images, predicted, _ = setup
    try:
        locate("/nonexistent/tesseract")
    except TesseractUnavailable as err:
        note = str(err.code)
    reader = load_reader(str(model), None, max_new_tokens=int(MAX_NEW_TOKENS))
    demo = LineDemo(reader, None, note)
    prediction, tesseract_text, _, scores, messages, _ = demo.read([str(images[1])], LINES[1])
    assert (prediction, tesseract_text, messages) == (predicted["1.png"], "", "")
    assert [row.split(" | ")[0] for row in scores.splitlines()[2:]] == [f"| {reader.engine}"]  # one engine
    from hindi_ocr.demo_ui import _tesseract_note

    assert _tesseract_note(demo) == f"**Tesseract is not shown:** {note}"
    assert "apt-get install tesseract-ocr tesseract-ocr-hin" in note


def test_core_modules_do_not_import_gradio_and_the_demo_says_how_to_get_it(tmp_path):
    """The demo is an extra: train.py, infer.py and the demo's own modules import Gradio only to serve a page."""
    code = ("import sys; import train, infer, hindi_ocr.demo, hindi_ocr.demo_ui, hindi_ocr.space; "
            "assert 'gradio' not in sys.modules, 'gradio imported'; "
            "sys.modules['gradio'] = None; "  # as if it were not installed: `import gradio` raises ImportError
            f"hindi_ocr.demo.main(['--model_name_or_path', {str(tmp_path / 'no-model')!r}])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=local_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == ('The demo needs Gradio: pip install -e ".[demo]" (or pip install '
                                                    '"hindi-ocr[demo]")')


def test_more_uploads_than_a_request_reads(setup, tmp_path):
    """Past MAX_IMAGES the rest is left for the next click, and said so (non-images here: no model time spent)."""
    from hindi_ocr.demo_ui import MAX_IMAGES

    paths = []
    for i in range(MAX_IMAGES + 1):
        paths.append(tmp_path / f"n{i}.txt")
        paths[-1].write_text("x", encoding="utf-8")
    demo = LineDemo(load_reader(str(setup[1]), None, max_new_tokens=int(MAX_NEW_TOKENS)))
    messages = demo.read([str(p) for p in paths], "")[4].split("\n\n")
    assert messages[0] == f"Only the first {MAX_IMAGES} of {MAX_IMAGES + 1} images were read; upload the rest next."
    assert [m.split("**")[1] for m in messages[1:-1]] == [f"n{i}.txt" for i in range(MAX_IMAGES)]
    assert messages[-1] == NO_UPLOAD
