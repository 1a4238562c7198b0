"""Bad input the dataset builder's own tests do not cover (tests/test_dataset_builder.py has missing/renamed
columns, empty text, missing/truncated/fake images, paths leaving the image folder, non-UTF-8 and UTF-16 files, and
skip_invalid counting): CSV quirks, odd image files, and random input to the CSV reader."""

import csv
import io
import json
import logging
import os
import re
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import infer
import train
from hindi_ocr import rows
from hindi_ocr.data import load_line_dataset
from hindi_ocr.examples import OcrExampleBuilder, to_rgb
from hindi_ocr.render import devanagari_fonts, render_line
from hindi_ocr.tiny import build_tiny_model, load_tiny

WORDS = ["नमस्ते", "भारत", "किताब", "पानी", "घर", "सूरज"]


@pytest.fixture(scope="module")
def line_image():
    """A rendered Hindi line, grey-scale: black ink on white paper."""
    return render_line("नमस्ते भारत", devanagari_fonts("Hind")[0], size=20)


def csv_folder(folder: Path, line_image, body: str | bytes, images=("a.png", "b.png", "c.png")) -> Path:
    """folder/data.csv with ``body`` (after the header line) and the named images beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in images:
        line_image.save(folder / name)
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    (folder / "data.csv").write_bytes(b"image_file,text\n" + data)
    return folder / "data.csv"


def read(path, **options):
    return [(r.image_file, r.text, r.line) for r in rows.read_csv_rows(path, **options)]


# --- CSV quirks ---------------------------------------------------------------------------------------------------

def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path, line_image):
    """An unquoted comma in the text would otherwise cut the transcription silently at the comma."""
    path = csv_folder(tmp_path, line_image, "a.png,नमस्ते\nb.png,नमस्ते, दुनिया\n")
    with pytest.raises(rows.InvalidRowError) as caught:
        rows.read_csv_rows(path)
    assert str(caught.value) == (f'{path}, line 3: 3 fields but the header has 2; put text that contains a comma '
                                 'in double quotes ("like, this")')
    path.write_text('image_file,text\na.png,नमस्ते,\nb.png,"नमस्ते, दुनिया",, \n', encoding="utf-8")
    assert read(path) == [("a.png", "नमस्ते", 2), ("b.png", "नमस्ते, दुनिया", 3)]  # empty extras: Excel's habit


def test_repeated_rows_are_kept_with_a_warning_and_conflicting_ones_refused(tmp_path, line_image, caplog):
    path = csv_folder(tmp_path, line_image, "a.png,नमस्ते\nb.png,भारत\na.png,नमस्ते\n./a.png,नमस्ते\n")
    with caplog.at_level(logging.WARNING, logger="hindi_ocr.rows"):
        got = read(path)
    assert got == [("a.png", "नमस्ते", 2), ("b.png", "भारत", 3), ("a.png", "नमस्ते", 4), ("./a.png", "नमस्ते", 5)]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning == (f"{path}: 2 rows repeat an earlier row (same image, same text) and are kept, so those lines "
                       "weigh more in training; lines 4, 5")

    path.write_text("image_file,text\na.png,नमस्ते\nb.png,भारत\na.png,नमस्कार\n", encoding="utf-8")
    with pytest.raises(rows.InvalidRowError, match=re.escape(
            f"{path}, line 4: image 'a.png' is also on line 2 with another text ('नमस्ते' there, 'नमस्कार' here); "
            "keep the right one")):
        rows.read_csv_rows(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hindi_ocr.rows"):
        assert read(path, skip_invalid=True) == [("a.png", "नमस्ते", 2), ("b.png", "भारत", 3)]
    assert "skipped 1 invalid rows (1 conflicting_text)" in caplog.text


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x9b"])
def test_control_characters_in_text_are_refused_with_row_and_position(tmp_path, line_image, char):
    path = csv_folder(tmp_path, line_image, f"a.png,नमस्ते\nb.png,भार{char}त\n")
    message = (f"{path}, line 3: text has control character U+{ord(char):04X} at position 4; remove it (a "
               "transcription never contains one: the file may be corrupt)")
    with pytest.raises(rows.InvalidRowError) as caught:
        rows.read_csv_rows(path)
    assert str(caught.value) == message and caught.value.reason == "control_character"
    assert read(path, skip_invalid=True) == [("a.png", "नमस्ते", 2)]


def test_joiners_and_inner_whitespace_are_not_control_characters(tmp_path, line_image):
    text = "क्\u200dष\tपानी"  # ZWJ (a format character that shapes the conjunct) and a tab
    path = csv_folder(tmp_path, line_image, f'a.png,"{text}"\n')
    assert read(path) == [("a.png", text, 2)]


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_windows_and_old_mac_line_ends(tmp_path, line_image, newline, caplog):
    """Line ends of any platform; a quoted cell over two lines is one row whose text has a line break: refused
    (naming the row's first line) like other bad rows, skipped with skip_invalid, the lines after it still counted."""
    body = newline.join(["a.png,नमस्ते", 'b.png,"भारत', 'देश"', "c.png,पानी", ""])
    path = csv_folder(tmp_path, line_image, body)
    path.write_bytes(path.read_bytes().replace(b"image_file,text\n", f"image_file,text{newline}".encode()))
    with pytest.raises(rows.InvalidRowError) as caught:
        rows.read_csv_rows(path)
    assert caught.value.reason == "line_break" and str(caught.value) == (
        f"{path}, line 3: text has a line break (U+000D at position 5); a row is "
        "one text line: join its lines with a space, or give each line its own image and row")
    assert read(path, skip_invalid=True) == [("a.png", "नमस्ते", 2), ("c.png", "पानी", 5)]
    path.write_bytes(path.read_bytes() + f"missing.png,घर{newline}".encode())
    with caplog.at_level(logging.WARNING, logger="hindi_ocr.rows"):
        read(path, skip_invalid=True)
    assert "skipped 2 invalid rows (1 line_break, 1 missing_image)" in caplog.text
    assert "; line 6: image 'missing.png' not found" in caplog.text


# --- image files --------------------------------------------------------------------------------------------------

def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (the data after it is a few bytes): a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_zero_byte_and_oversized_images_name_the_file(tmp_path, line_image):
    path = csv_folder(tmp_path, line_image, "a.png,नमस्ते\nempty.png,भारत\n")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(rows.InvalidRowError, match=re.escape(
            f"{path}, line 3: image {tmp_path / 'empty.png'} is unreadable or truncated (UnidentifiedImageError")):
        rows.read_csv_rows(path)

    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's guard is on, at its default
    (tmp_path / "huge.png").write_bytes(bomb_png(40_000, 40_000))
    path.write_text("image_file,text\na.png,नमस्ते\nhuge.png,भारत\n", encoding="utf-8")
    with pytest.raises(rows.InvalidRowError) as caught:
        rows.read_csv_rows(path, check_images="header")
    assert str(caught.value).startswith(f"{path}, line 3: image {tmp_path / 'huge.png'} is too large for a text "
                                        "line: Image size (1600000000 pixels) exceeds limit of 178956970 pixels")
    assert str(caught.value).endswith("Downscale the image; the limit guards against decompression bombs and stays on")


@pytest.mark.parametrize("name, content", [("empty.png", b""), ("notes.png", b"just some text"),
                                           ("huge.png", bomb_png(40_000, 40_000))])
def test_infer_refuses_a_bad_image_before_loading_any_model(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    no_model = tmp_path / "no-model-here"  # were the model loaded first, the error would be about it
    with pytest.raises(SystemExit) as caught:
        infer.main(["--model_name_or_path", str(no_model), str(tmp_path / name)])
    assert str(caught.value).startswith(f"{tmp_path / name}: not a readable image (")
    assert str(caught.value).endswith("); remove it from the arguments")


def odd_files(folder: Path, line: Image.Image) -> dict[str, Image.Image]:
    """The line saved in modes and layouts that a plain ``convert("RGB")`` gets wrong, with what each must read
    as; ``1x1.png`` is a single pixel."""
    grey = np.asarray(line)
    ink = 255 - grey
    binary = Image.fromarray(np.where(grey < 128, 0, 255).astype(np.uint8))
    expected = {}

    def save(name, image, want, **options):
        image.save(folder / name, **options)
        expected[name] = want.convert("RGB")

    save("grey16.png", Image.fromarray(grey.astype(np.uint16) * 257), line)  # 16-bit: plain convert is all white
    save("cmyk.tif", line.convert("RGB").convert("CMYK"), line)
    save("palette.png", line.convert("RGB").convert("P"), line.convert("RGB").convert("P"))
    clear = Image.fromarray(np.zeros_like(grey))  # black ink on a transparent black sheet
    save("alpha.png", Image.merge("RGBA", (clear, clear, clear, Image.fromarray(ink))), line)
    save("grey_alpha.png", Image.merge("LA", (clear, Image.fromarray(ink))), line)
    palette = Image.fromarray((grey < 128).astype(np.uint8), "P")  # index 0 paper, 1 ink: both black,
    palette.putpalette([0, 0, 0, 0, 0, 0])  # as GIF exporters leave it, the paper being transparent
    save("palette_alpha.png", palette, binary, transparency=0)
    save("bilevel.png", binary.convert("1"), binary)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": pixels stored sideways, as a phone does
    save("rotated.png", line.transpose(Image.Transpose.ROTATE_90), line, exif=exif)
    save("1x1.png", Image.new("L", (1, 1), 0), Image.new("L", (1, 1), 0))
    return expected


def test_odd_images_read_alike_in_training_and_in_reading(tmp_path, line_image):
    expected = odd_files(tmp_path, line_image)
    for name, want in expected.items():
        with Image.open(tmp_path / name) as image:
            got = to_rgb(image)
        assert got.mode == "RGB" and got.size == want.size, name
        assert np.array_equal(np.asarray(got), np.asarray(want)), name

    (tmp_path / "data.csv").write_text("image_file,text\n" + "".join(f"{n},{WORDS[0]}\n" for n in expected),
                                       encoding="utf-8")
    ds = load_line_dataset(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), validation_ratio=0,
                           test_ratio=0)["train"]
    _, processor = load_tiny(build_tiny_model(tmp_path / "tiny"))
    for layout in ("squash", "letterbox", "fold"):
        builder = OcrExampleBuilder(processor, line_layout=layout)
        for row in ds:  # the training collator's view of each file must be the image it shows
            got = builder.prompt_inputs([row["image"]])["pixel_values"]
            want = builder.prompt_inputs([expected[row["image_file"]]])["pixel_values"]
            assert np.array_equal(got.numpy(), want.numpy()), (layout, row["image_file"])


# --- train.py on bad data ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


RUN = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
       "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--max_target_tokens", "16"]


def test_strict_mode_stops_train_py_before_any_training(tmp_path, tiny, line_image):
    path = csv_folder(tmp_path / "data", line_image, "a.png,नमस्ते\nb.png,भा\x00रत\nc.png,पानी\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        train.main(["--model_name_or_path", str(tiny), "--data_dir", str(path.parent), "--output_dir", str(out),
                    *RUN])
    assert str(caught.value) == (
        f"{path}, line 3: text has control character U+0000 at position 3; remove it (a transcription never "
        "contains one: the file may be corrupt)\nFix it, or pass --dataset_options skip_invalid=true to skip bad "
        "rows (each skipped row is counted, with its reason, in the log).")
    assert not out.exists()  # no Trainer was built: nothing written, no checkpoint


def test_skip_mode_trains_and_reads_odd_images(tmp_path, tiny, line_image, caplog):
    data = tmp_path / "data"
    data.mkdir()
    names = odd_files(data, line_image)
    (data / "empty.png").write_bytes(b"")
    body = [f"{name},{WORDS[i % len(WORDS)]}" for i, name in enumerate(names)]
    body += ["empty.png,घर", "a.png,सूरज\x1b", "../escape.png,घर"]
    (data / "data.csv").write_text("image_file,text\n" + "\n".join(body) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="hindi_ocr.rows"):
        train.main(["--model_name_or_path", str(tiny), "--data_dir", str(data), "--output_dir", str(out),
                    "--dataset_options", "validation_ratio=0,test_ratio=0,skip_invalid=true", *RUN])
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "hindi_ocr.rows"]
    assert warning.startswith(f"{data / 'data.csv'}: skipped 3 invalid rows (1 bad_image, 1 control_character, "
                              "1 outside_image_dir); first: line 11: image ")
    assert (out / "adapter_model.safetensors").is_file()

    # Files that hold the plain line in another mode, layout or orientation must read as the plain line does.
    # (After 2 steps the tiny model reads little from any image; test_odd_images_read_alike_in_training_and_in_reading
    # pins the pixels themselves.)
    line_image.save(tmp_path / "plain.png")
    predictions = tmp_path / "predictions.jsonl"
    infer.main(["--adapter", str(out), "--max_new_tokens", "4", "--output", str(predictions),
                str(tmp_path / "plain.png"), *[str(data / n) for n in names]])
    records = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert [r["image"] for r in records] == [str(tmp_path / "plain.png")] + [str(data / n) for n in names]
    plain = line_image.convert("RGB")
    same = [n for n, want in names.items() if np.array_equal(np.asarray(want), np.asarray(plain))]
    assert sorted(same) == ["alpha.png", "cmyk.tif", "grey16.png", "grey_alpha.png", "rotated.png"]
    read = {Path(r["image"]).name: r["prediction"] for r in records}
    assert {name: read[name] for name in same} == {name: read["plain.png"] for name in same}


# --- random input --------------------------------------------------------------------------------------------------

def _sample_files() -> list[bytes]:
    """Small valid images in several formats, for hypothesis to cut and corrupt."""
    image = Image.new("RGB", (6, 3), (255, 255, 255))
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        out.append(buffer.getvalue())
    return out


SAMPLES = _sample_files()
NAMES = ["a.png", "b.jpg", os.path.join("sub", "c.png")]
FILE_LEVEL = {"no_rows", "missing_column", "bad_csv"}  # reasons that concern the whole file, not a row

corrupted = st.builds(
    lambda sample, cut, flips: bytes(b ^ flips.get(i, 0) for i, b in enumerate(sample[:cut])),
    st.sampled_from(SAMPLES), st.integers(0, 400),
    st.dictionaries(st.integers(0, 300), st.integers(1, 255), max_size=4))
image_bytes = st.one_of(st.sampled_from(SAMPLES), corrupted, st.binary(max_size=64))
image_file = st.one_of(st.sampled_from(NAMES + ["../a.png", "/etc/hostname", "", "sub", "a.png\x00"]),
                       st.text(max_size=10))
table = st.lists(st.lists(st.one_of(image_file, st.text(max_size=12)), min_size=0, max_size=4), max_size=6)


def _csv_bytes(header, records, encoding_junk):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(records)
    return buffer.getvalue().encode("utf-8") + encoding_junk


csv_bytes = st.one_of(
    st.builds(_csv_bytes, st.sampled_from([["image_file", "text"], ["text", "image_file", "id"], ["image", "text"]]),
              table, st.sampled_from([b"", b"\xff\xfe", b"\n\x00,\x85", b'"unclosed'])),
    st.binary(max_size=120),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_bytes, images=st.dictionaries(st.sampled_from(NAMES), image_bytes),
       check=st.sampled_from(rows.IMAGE_CHECKS), skip=st.booleans())
def test_random_csv_and_image_bytes_give_rows_or_invalid_row_error(data, images, check, skip):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "data")
        (folder / "sub").mkdir(parents=True)
        (folder / "data.csv").write_bytes(data)
        for name, content in images.items():
            (folder / name).write_bytes(content)
        try:
            got = rows.read_csv_rows(folder / "data.csv", skip_invalid=skip, check_images=check)
        except rows.InvalidRowError as error:
            assert str(error).startswith(str(folder / "data.csv"))
            if skip:  # only a problem with the file as a whole may stop a run that skips bad rows
                assert error.reason in FILE_LEVEL or (error.reason == "not_utf8" and error.line == 1), error
            return
        for row in got:
            assert row.text and row.text == row.text.strip() and rows.text_problem(row.text) is None
            assert os.path.commonpath([row.image_path, str(folder)]) == str(folder)
            assert rows.check_image(row.image_path, check) is None
