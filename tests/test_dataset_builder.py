"""The dataset builder's csv / swift_json / synthetic configs, via load_dataset and via the builder class."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import functools  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import unicodedata  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from hindi_ocr import render, rows  # noqa: E402
from hindi_ocr.splits import split_rows  # noqa: E402
from hindi_ocr.data import load_line_dataset  # noqa: E402

BUILDER = str(Path(__file__).resolve().parent.parent / "dataset_builder")
STRING = datasets.Value("string")
FEATURES = datasets.Features({"image": datasets.Image(), "text": STRING, "image_file": STRING})
WORDS = ["नमस्ते", "भारत", "किताब", "हिन्दी", "विद्यालय", "क्षत्रिय",
         "पानी", "घर", "श्रम", "दुनिया", "ज्ञान", "सूरज"]
NFD_TEXT = "\u0928\u093c\u0908 दिल्ली"  # ऩ decomposed: NFC composes it to U+0929
NFC_TEXT = "\u0929\u0908 दिल्ली"
SPLITS = ("train", "validation", "test")


@functools.lru_cache(maxsize=None)
def png(text: str) -> bytes:
    hind = next(f for f in render.devanagari_fonts() if f.name == "Hind-Regular")
    return render.png_bytes(render.render_line(text, hind, 20))


def write_csv_dir(folder: Path, texts, name="data.csv", prefix="line"):
    """Seed layout: folder/data.csv + folder/output_images/<prefix>_<i>.png, one rendered line per text."""
    (folder / "output_images").mkdir(parents=True, exist_ok=True)
    lines = ["image_file,text"]
    for i, text in enumerate(texts):
        image = png(unicodedata.normalize("NFC", text).strip())
        (folder / "output_images" / f"{prefix}_{i}.png").write_bytes(image)
        lines.append(f'{prefix}_{i}.png,"{text}"')
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def load(data_dir, cache, *args, **kwargs):
    return datasets.load_dataset(BUILDER, *args, data_dir=str(data_dir) if data_dir else None,
                                 cache_dir=str(cache), trust_remote_code=True, **kwargs)


def sizes(dataset_dict):
    return [len(dataset_dict[split]) if split in dataset_dict else 0 for split in SPLITS]


def assignment(dataset_dict):
    return {split: sorted(dataset_dict[split]["image_file"]) for split in SPLITS}


# --- csv ------------------------------------------------------------------------------------------------

def test_csv_config_through_load_dataset(tmp_path):
    texts = WORDS[:9] + [f"  {NFD_TEXT}  "]
    data = write_csv_dir(tmp_path / "data", texts)
    ds = load(data, tmp_path / "cache", validation_ratio=0.2, test_ratio=0.1)

    assert isinstance(ds, datasets.DatasetDict) and set(ds) == set(SPLITS)
    assert ds["train"].info.config_name == "csv"
    assert sizes(ds) == [7, 2, 1]
    assert all(split.features == FEATURES for split in ds.values())
    every = {row["image_file"]: row for split in ds.values() for row in split}
    expected = {f"line_{i}.png": unicodedata.normalize("NFC", t).strip() for i, t in enumerate(texts)}
    assert {name: row["text"] for name, row in every.items()} == expected
    assert every["line_9.png"]["text"] == NFC_TEXT
    on_disk = Image.open(io.BytesIO(png(WORDS[3])))
    assert np.array_equal(np.asarray(every["line_3.png"]["image"]), np.asarray(on_disk))


def test_csv_split_is_deterministic_and_depends_on_the_seed(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS)
    ratios = dict(validation_ratio=0.25, test_ratio=0.25)
    first = load(data, tmp_path / "c1", split_seed=3, **ratios)
    again = load(data, tmp_path / "c2", split_seed=3, **ratios)
    other = load(data, tmp_path / "c3", split_seed=4, **ratios)
    assert assignment(first) == assignment(again)
    assert assignment(first) != assignment(other)
    assert sizes(first) == [6, 3, 3]


def test_split_rows_survives_reordering_and_keeps_file_order():
    line_rows = [rows.LineRow(f"/x/{i}.png", WORDS[i], f"{i}.png", "d.csv", i + 2) for i in range(12)]
    forward = split_rows(line_rows, 0.2, 0.2, seed=1)
    backward = split_rows(line_rows[::-1], 0.2, 0.2, seed=1)

    def names(parts):
        return {split: {r.image_file for r in part} for split, part in parts.items()}

    assert names(forward) == names(backward)
    assert [len(forward[s]) for s in SPLITS] == [8, 2, 2]
    assert [r.line for r in forward["train"]] == sorted(r.line for r in forward["train"])
    with pytest.raises(ValueError, match="2 rows are too few for test_ratio=0.1 and validation_ratio=0.1"):
        split_rows(line_rows[:2], 0.1, 0.1, seed=1)


def test_test_samples_folder_becomes_the_test_split(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS[:8])
    write_csv_dir(data / "TestSamples", ["परीक्षा एक", "परीक्षा दो"], prefix="test")
    ds = load_line_dataset(BUILDER, data_dir=str(data), cache_dir=str(tmp_path / "c1"), validation_ratio=0.25)
    assert ds["test"]["text"] == ["परीक्षा एक", "परीक्षा दो"]
    assert ds["test"]["image_file"] == ["test_0.png", "test_1.png"]
    assert sizes(ds) == [6, 2, 2]
    assert sorted(ds["train"]["text"] + ds["validation"]["text"]) == sorted(WORDS[:8])

    carved = load_line_dataset(data_dir=str(data), cache_dir=str(tmp_path / "c2"), test_dir="",
                               test_ratio=0.25, validation_ratio=0.25)
    assert sizes(carved) == [4, 2, 2]
    assert not set(carved["test"]["text"]) & {"परीक्षा एक", "परीक्षा दो"}


def test_named_csv_image_dir_and_data_files(tmp_path):
    data = tmp_path / "data"
    write_csv_dir(data, WORDS[:6], name="lines.csv")
    (data / "output_images").rename(data / "scans")
    (data / "scans" / "h_0.png").write_bytes(png("अंतिम पंक्ति"))
    (data / "held_out.csv").write_text("image_file,text\nh_0.png,अंतिम पंक्ति\n", encoding="utf-8")

    ds = load_line_dataset(data_dir=str(data), cache_dir=str(tmp_path / "c1"), csv_file="lines.csv",
                           image_dir="scans", validation_ratio=0.0, test_ratio=0.5)
    assert sorted(ds["train"]["text"] + ds["test"]["text"]) == sorted(WORDS[:6])
    assert "validation" not in ds  # a ratio of 0 asks for no such split

    ds = load(data, tmp_path / "c2", data_files={"train": "lines.csv", "test": "held_out.csv"},
              image_dir="scans", validation_ratio=0.5)
    assert ds["test"]["text"] == ["अंतिम पंक्ति"]
    assert sizes(ds) == [3, 3, 1]


def test_editing_the_csv_rebuilds_the_cached_dataset(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS[:4])
    options = dict(data_dir=str(data), cache_dir=str(tmp_path / "cache"), validation_ratio=0, test_ratio=0)
    assert len(load_line_dataset(**options)["train"]) == 4
    write_csv_dir(data, WORDS[:5])
    assert len(load_line_dataset(**options)["train"]) == 5


# --- bad input ------------------------------------------------------------------------------------------

GOOD = "line_0.png,नमस्ते\n".encode()
KA = "क".encode()


@pytest.mark.parametrize("body, line, message", [
    (b"image,label\nline_0.png,x\n", 1,
     "missing column(s) 'image_file', 'text'; found columns ['image', 'label']"),
    (b"image_file,text\n" + GOOD + b"line_1.png,   \n", 3, "text is empty or whitespace-only"),
    (b"image_file,text\n" + GOOD + b"nope.png," + KA + b"\n", 3, "image 'nope.png' not found in "),
    (b"image_file,text\n../secret.png," + KA + b"\n", 2,
     "image path '../secret.png' points outside the image folder"),
    (b"image_file,text\n" + GOOD + b"line_1.png,caf\xe9\n", 3,
     "byte 0xE9 in column 'text' is not valid UTF-8; re-save the file as UTF-8"),
    (b'image_file,text\nline_0.png,"two\nlines"\n,' + KA + b"\n", 2, "text has a line break (U+000A at position 4)"),
    (b"image_file,text\n" + GOOD + b"," + KA + b"\n", 3, "image file name is empty"),
    (b"\xff\xfei\x00m\x00", 1, "is UTF-16 encoded; re-save it as UTF-8"),
])
def test_bad_csv_rows_name_file_and_line(tmp_path, body, line, message):
    data = write_csv_dir(tmp_path / "data", WORDS[:2])
    (data / "data.csv").write_bytes(body)
    (tmp_path / "secret.png").write_bytes(png("गुप्त"))
    with pytest.raises(rows.InvalidRowError) as caught:
        rows.read_csv_rows(data / "data.csv")
    assert str(caught.value).startswith(f"{data / 'data.csv'}, line {line}: ")
    assert message in str(caught.value)


def test_absolute_paths_truncated_and_fake_images(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS[:3])
    images = data / "output_images"
    (images / "line_1.png").write_bytes(png(WORDS[1])[:-30])
    (images / "line_2.png").write_bytes(b"not an image at all")
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png(WORDS[2]))).save(jpeg, "JPEG")
    (images / "cut.jpg").write_bytes(jpeg.getvalue()[:-200])
    (tmp_path / "outside.png").write_bytes(png(WORDS[0]))
    cases = [
        (images / "line_1.png", f"image {images / 'line_1.png'} is unreadable or truncated"),
        (images / "line_2.png", f"image {images / 'line_2.png'} is unreadable or truncated (Unidentified"),
        (images / "cut.jpg", f"image {images / 'cut.jpg'} is unreadable or truncated (JPEG end marker"),
        (tmp_path / "outside.png", f"image path '{tmp_path / 'outside.png'}' points outside the image"),
    ]
    for number, (image_file, message) in enumerate(cases, start=3):
        good = "".join(f"{images / 'line_0.png'},ठीक\n" for _ in range(number - 2))
        (data / "data.csv").write_text(f"image_file,text\n{good}{image_file},खराब\n", encoding="utf-8")
        expected = re.escape(f"{data / 'data.csv'}, line {number}: {message}")
        with pytest.raises(rows.InvalidRowError, match=expected):
            rows.read_csv_rows(data / "data.csv")
    assert rows.check_image(str(images / "cut.jpg"), "decode").startswith("OSError: image file is truncated")


def test_check_images_none_looks_files_up_without_opening_them(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS[:3])
    (data / "output_images" / "line_1.png").write_bytes(b"not an image at all")
    got = rows.read_csv_rows(data / "data.csv", check_images="none")
    assert [(r.image_file, r.line) for r in got] == [("line_0.png", 2), ("line_1.png", 3), ("line_2.png", 4)]
    with open(data / "data.csv", "a", encoding="utf-8") as handle:
        handle.write("gone.png,खो गया\n")
    with pytest.raises(rows.InvalidRowError, match=re.escape(f"{data / 'data.csv'}, line 5: image 'gone.png' not "
                                                             "found in ")):
        rows.read_csv_rows(data / "data.csv", check_images="none")


def test_bom_and_extra_columns_are_fine(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS[:2])
    body = "\ufeffid,image_file,text\n1,line_0.png,नमस्ते\n2,output_images/line_1.png,भारत\n"
    (data / "data.csv").write_bytes(body.encode("utf-8"))
    got = rows.read_csv_rows(data / "data.csv")
    assert [(r.image_file, r.text, r.line) for r in got] == [
        ("line_0.png", "नमस्ते", 2), ("output_images/line_1.png", "भारत", 3)]
    assert got[1].image_path == str(data / "output_images" / "line_1.png")
    assert rows.read_csv_rows(data) == got  # a folder means its data.csv


def test_errors_surface_through_load_dataset(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS[:4])
    with open(data / "data.csv", "a", encoding="utf-8") as handle:
        handle.write("line_0.png,\n")
    with pytest.raises(rows.InvalidRowError, match=re.escape(f"{data / 'data.csv'}, line 6: text is empty")):
        load(data, tmp_path / "cache")


def test_skip_invalid_counts_reasons(tmp_path, caplog):
    data = write_csv_dir(tmp_path / "data", WORDS[:6])
    with open(data / "data.csv", "a", encoding="utf-8") as handle:
        handle.write("line_0.png,  \nline_1.png,\nmissing.png,कुछ\n../data.csv,कुछ\n")
    with caplog.at_level(logging.WARNING, logger="hindi_ocr.rows"):
        ds = load(data, tmp_path / "cache", skip_invalid=True, validation_ratio=0, test_ratio=0)
    assert sorted(ds["train"]["text"]) == sorted(WORDS[:6])
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "hindi_ocr.rows"]
    counts = "skipped 4 invalid rows (2 empty_text, 1 missing_image, 1 outside_image_dir)"
    assert f"{data / 'data.csv'}: {counts}" in warning
    assert "first: line 8: text is empty or whitespace-only; line 9: text is empty" in warning


# --- swift_json -----------------------------------------------------------------------------------------

def swift_row(text, image):
    return {"query": "<image>Transcribe the text in this image", "response": text, "images": [image]}


def test_swift_json_array_through_load_dataset(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS[:5])
    records = [swift_row(WORDS[i], f"output_images/line_{i}.png") for i in range(4)]
    records.append(swift_row(NFD_TEXT, str(data / "output_images" / "line_4.png")))
    (data / "train.json").write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    ds = load(data, tmp_path / "cache", "swift_json", validation_ratio=0.2, test_ratio=0.2)
    assert ds["train"].features == FEATURES and ds["train"].info.config_name == "swift_json"
    assert sizes(ds) == [3, 1, 1]
    every = {r["image_file"]: r["text"] for split in ds.values() for r in split}
    assert every[str(data / "output_images" / "line_4.png")] == NFC_TEXT
    assert every["output_images/line_0.png"] == WORDS[0]


def test_swift_jsonl_and_bad_records(tmp_path):
    data = write_csv_dir(tmp_path / "data", WORDS[:3])
    jsonl = data / "rows.jsonl"
    good = [json.dumps(swift_row(WORDS[i], f"output_images/line_{i}.png"), ensure_ascii=False)
            for i in range(3)]
    jsonl.write_text("\n".join(good) + "\n", encoding="utf-8")
    assert [r.text for r in rows.read_swift_rows(jsonl)] == WORDS[:3]

    no_response = json.dumps({"query": "q", "images": ["x.png"]})
    jsonl.write_text("\n".join([good[0], "", no_response]), encoding="utf-8")
    message = f"{jsonl}, line 3: missing key 'response' (found keys ['images', 'query'])"
    with pytest.raises(rows.InvalidRowError, match=re.escape(message)):
        rows.read_swift_rows(jsonl)

    array = data / "rows.json"
    array.write_text(json.dumps([swift_row("क", "output_images/line_0.png"), swift_row("ख", "gone.png")],
                                indent=1), encoding="utf-8")
    message = f"{array}, line 9: image {data / 'gone.png'} not found"
    with pytest.raises(rows.InvalidRowError, match=re.escape(message)):
        rows.read_swift_rows(array)


def test_a_line_break_in_one_lines_text_is_a_bad_row_in_swift_json_and_hub_datasets(tmp_path, caplog):
    """A response or a Hub dataset's text with a line break: on a page it would pass for the next line. Refused
    naming the file and line (the split and row of a Hub dataset, streamed or not), skipped with skip_invalid."""
    data = write_csv_dir(tmp_path / "data", WORDS[:3])
    jsonl = data / "rows.jsonl"
    records = [swift_row(WORDS[0], "output_images/line_0.png"), swift_row("भारत\nदेश", "output_images/line_1.png"),
               swift_row(WORDS[2], "output_images/line_2.png")]
    jsonl.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    breaks = ("text has a line break (U+000A at position 5); a row is one text line: join its lines with a space, "
              "or give each line its own image and row")
    with pytest.raises(rows.InvalidRowError, match=re.escape(f"{jsonl}, line 2: {breaks}")):
        rows.read_swift_rows(jsonl)
    assert [r.text for r in rows.read_swift_rows(jsonl, skip_invalid=True)] == [WORDS[0], WORDS[2]]

    # a dataset loaded by name (here a local parquet folder; a Hub id goes the same way)
    hub = tmp_path / "hub-dataset"
    (hub / "data").mkdir(parents=True)
    texts = [WORDS[0], "भारत\r\nदेश", WORDS[2], "पानी\u2028घर"]
    datasets.Dataset.from_dict({"image": [{"bytes": png(WORDS[0]), "path": None}] * 4, "text": texts},
                               features=datasets.Features({"image": datasets.Image(), "text": STRING})
                               ).to_parquet(str(hub / "data" / "train-00000-of-00001.parquet"))
    cache = str(tmp_path / "cache")
    source = f"{hub} (train split)"
    with pytest.raises(rows.InvalidRowError) as caught:
        load_line_dataset(str(hub), cache_dir=cache, check_texts=True)
    assert str(caught.value) == f"{source}, row 2: " + breaks.replace("U+000A", "U+000D")
    with caplog.at_level(logging.WARNING, logger="hindi_ocr.rows"):
        kept = load_line_dataset(str(hub), cache_dir=cache, check_texts=True, skip_invalid=True)["train"]
    assert kept["text"] == [WORDS[0], WORDS[2]]
    assert f"{source}: skipped 2 invalid rows (2 line_break); first: row 2: " in caplog.text
    stream = load_line_dataset(str(hub), cache_dir=cache, check_texts=True, streaming=True,
                               skip_invalid=True)["train"]
    assert [row["text"] for row in stream] == [WORDS[0], WORDS[2]]
    with pytest.raises(rows.InvalidRowError, match=re.escape(f"{source}, row 2: text has a line break")):
        list(load_line_dataset(str(hub), cache_dir=cache, check_texts=True, streaming=True)["train"])
    # train.py stops before any model loads, naming the row and how to skip it; reading takes any reference
    import train

    with pytest.raises(SystemExit, match=re.escape(f"{source}, row 2: text has a line break (U+000D")) as caught:
        train.main(["--dataset_name", str(hub), "--model_name_or_path", str(tmp_path / "no-model"), "--output_dir",
                    str(tmp_path / "out"), "--max_steps", "1"])
    assert "pass --dataset_options skip_invalid=true to skip bad rows" in str(caught.value)
    assert load_line_dataset(str(hub), cache_dir=cache)["train"]["text"] == texts


# --- synthetic ------------------------------------------------------------------------------------------

def test_synthetic_is_the_default_without_data_dir(tmp_path, monkeypatch):
    options = dict(train_lines=3, validation_lines=1, test_lines=1, fonts="Hind,Teko", image_height=48)
    monkeypatch.chdir(Path(BUILDER).parent)  # the relative path train.py uses; the package __init__ is harmless
    ds = datasets.load_dataset("./dataset_builder", cache_dir=str(tmp_path / "c1"), trust_remote_code=True,
                               **options)
    assert ds["train"].info.config_name == "synthetic"
    assert sizes(ds) == [3, 1, 1]
    assert ds["train"].features == FEATURES
    names = {f.name for f in render.devanagari_fonts("Hind,Teko")}
    for split in ds:
        for key, row in enumerate(ds[split]):
            assert re.fullmatch(rf"{split}/{key:06d}__[\w-]+\.png", row["image_file"])
            assert render.font_of(row["image_file"]) in names
            assert row["image"].height == 48
            assert row["text"] == unicodedata.normalize("NFC", row["text"]) and row["text"].strip()

    again = load_line_dataset(config_name="synthetic", cache_dir=str(tmp_path / "c2"), **options)
    assert again["train"]["image_file"] == ds["train"]["image_file"]
    assert again["train"]["text"] == ds["train"]["text"]
    pixels = [np.asarray(im).tobytes() for im in ds["test"]["image"]]
    assert [np.asarray(im).tobytes() for im in again["test"]["image"]] == pixels


def test_synthetic_from_a_text_file(tmp_path):
    lines = ["पहली पंक्ति", "दूसरी पंक्ति", "तीसरी पंक्ति", "चौथी पंक्ति", NFD_TEXT]
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds = load_line_dataset(config_name="synthetic", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                           text_file="lines.txt", validation_lines=1, test_lines=1, augment=False)
    assert sizes(ds) == [3, 1, 1]
    used = ds["train"]["text"] + ds["validation"]["text"] + ds["test"]["text"]
    assert sorted(used) == sorted(unicodedata.normalize("NFC", line) for line in lines)


def test_vocabulary_lines_are_new_in_every_split_and_clean(tmp_path):
    """The quick start's data: lines of the 50 commonest words, no line in two splits, one size, no noise."""
    ds = load_line_dataset(config_name="synthetic", cache_dir=str(tmp_path / "cache"), train_lines=40,
                           validation_lines=8, test_lines=8, vocabulary=50, min_words=2, max_words=3,
                           fonts="Hind-Regular", font_size=32)
    texts = {split: ds[split]["text"] for split in ("train", "validation", "test")}
    assert [len(t) for t in texts.values()] == [40, 8, 8]
    assert len(set(sum(texts.values(), []))) == 56  # distinct lines: validation/test never trained on
    words = set(render.common_words(50))
    assert all(2 <= len(t.split()) <= 3 and set(t.split()) <= words for t in sum(texts.values(), []))
    row = ds["validation"][0]
    expected = render.render_line(row["text"], render.devanagari_fonts("Hind-Regular")[0], 32, height=64)
    assert np.asarray(row["image"].convert("L")).tobytes() == np.asarray(expected).tobytes()  # no noise, no tilt
    with pytest.raises(ValueError, match="too few combinations"):
        render.generate_lines(100, vocabulary=5, min_words=1, max_words=2)


def test_unknown_option_and_missing_csv_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.csv not found: the csv config reads data\.csv"):
        load_line_dataset(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="doesn't have a 'csv_file' key"):
        load_line_dataset(config_name="synthetic", cache_dir=str(tmp_path / "cache"), csv_file="x.csv")
