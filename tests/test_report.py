"""The error report (hindi_ocr/report.py): counts computed by hand, exact Markdown, a real PNG on disk."""

from __future__ import annotations

import pytest
from PIL import Image

import infer
from hindi_ocr.report import analyse, char_class, to_markdown, write_report
from hindi_ocr.scoring import edit_counts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_one_matra_substitution():
    # किताब = क ि त ा ब ; कीताब has ी (U+0940) for ि (U+093F): one substitution, nothing else
    report = analyse(["कीताब"], ["किताब"])
    assert dict(report.substitutions) == {("\u093f", "\u0940"): 1}
    assert not report.deletions and not report.insertions
    assert report.by_class() == {
        "matra": {"reference": 2, "substituted": 1, "deleted": 0, "inserted": 0},
        "consonant": {"reference": 3, "substituted": 0, "deleted": 0, "inserted": 0},
    }


@pytest.mark.parametrize("reference", ["ज\u093cमीन", "\u095bमीन"])  # decomposed, and precomposed ज़ (NFC splits it)
def test_nukta_deletion(reference):
    report = analyse(["जमीन"], [reference])
    assert dict(report.deletions) == {"\u093c": 1}
    assert not report.substitutions and not report.insertions
    assert report.by_class()["nukta"] == {"reference": 1, "substituted": 0, "deleted": 1, "inserted": 0}


def test_conjunct_read_wrong_counts_once_per_reference_grapheme():
    # क्षमा: graphemes क्ष + मा; without the virama the prediction has three (क, ष, मा): the conjunct is wrong
    wrong = analyse(["कषमा"], ["क्षमा"])
    assert wrong.conjuncts == 1 and sum(wrong.conjunct_errors.values()) == 1
    assert [r for r, _ in wrong.conjunct_errors] == ["क्ष"]
    table = [line for line in to_markdown(wrong).splitlines() if line.startswith("| क्ष | ")]
    assert len(table) == 1 and table[0].endswith(" | 1 |")  # "reference grapheme | read as | count"
    assert dict(wrong.deletions) == {"\u094d": 1} and wrong.by_class()["virama"]["deleted"] == 1
    right = analyse(["क्षमा सही"], ["क्षमा सहि"])  # the conjunct is read right, another grapheme is not
    assert right.conjuncts == 1 and not right.conjunct_errors


@pytest.mark.parametrize("char, cls", [
    ("\u093e", "matra"), ("\u094c", "matra"), ("\u0962", "matra"), ("\u093c", "nukta"), ("\u094d", "virama"),
    ("\u0901", "anusvara/chandrabindu/visarga"), ("\u0902", "anusvara/chandrabindu/visarga"),
    ("\u0903", "anusvara/chandrabindu/visarga"), ("अ", "independent vowel"), ("ऋ", "independent vowel"),
    ("क", "consonant"), ("ह", "consonant"), ("०", "digit"), ("7", "digit"), ("।", "danda/punctuation"),
    ("॥", "danda/punctuation"), ("?", "danda/punctuation"), ("G", "Latin"), ("é", "Latin"), (" ", "space"),
    ("\u093d", "other"),
])
def test_char_classes(char, cls):
    assert char_class(char) == cls


@pytest.mark.parametrize("predictions, references", [
    (["कीताब", "", "नमस्ते दुनिया", "abc"], ["किताब", "जमीन", "नमस्ते   दुनिया", ""]),
    (["भारत एक विशाल देश", "क्षत्रिय"], ["भारत  एक देश है।", "क्षत्रिय ज़मीन"]),
])
def test_edits_add_up_to_the_cer_numerator(predictions, references):
    report = analyse(predictions, references)
    counts = edit_counts(predictions, references, "cer")
    assert sum(report.substitutions.values()) == counts.substitutions
    assert sum(report.deletions.values()) == counts.deletions
    assert sum(report.insertions.values()) == counts.insertions
    assert sum(report.reference_chars.values()) == counts.reference_units


def test_length_buckets_and_worst_lines():
    refs = ["क" * 5, "ख" * 15, "ग" * 100]
    preds = ["क" * 5, "ख" * 12, "ग" * 90]  # CER 0, 3/15, 10/100
    report = analyse(preds, refs, worst=5)
    assert report.by_length == [("1-10", 1, 0.0), ("11-20", 1, 0.2), ("81+", 1, 0.1)]
    assert [cer for cer, *_ in report.worst] == [0.2, 0.1]  # error-free lines are not listed
    assert report.by_font is None
    assert "## CER by font" not in to_markdown(report)


EXPECTED_MARKDOWN = """\
# Error report: toy

1 line. CER 0.2000, WER 1.0000, grapheme_CER 0.3333 (texts normalised as for scoring: NFC, ZWJ/ZWNJ dropped, \
whitespace collapsed).
Character edits: 1 substituted, 0 deleted, 0 inserted, over 5 reference characters.

![error counts by class, CER by line length and font](toy.png)

## Errors by character class

| class | in references | substituted | deleted | inserted | (substituted + deleted) / in references |
|---|---|---|---|---|---|
| matra | 2 | 1 | 0 | 0 | 0.5000 |
| consonant | 3 | 0 | 0 | 0 | 0.0000 |

Substituted and deleted characters count in the class of the reference character, inserted ones in the class of \
the predicted character.

## Conjuncts

Reference graphemes holding a virama: 0; read wrong: 0.

## Most frequent substitutions

| reference | prediction | count |
|---|---|---|
| ◌ि U+093F | ◌ी U+0940 | 1 |

## Most frequent deletions

None.

## Most frequent insertions

None.

## CER by line length

| reference characters | lines | CER |
|---|---|---|
| 1-10 | 1 | 0.2000 |

## CER by font

| font | lines | CER |
|---|---|---|
| Hind-Regular | 1 | 0.2000 |

## Worst lines (1)

| line CER | image | reference | prediction |
|---|---|---|---|
| 0.2000 | `00000__Hind-Regular.png` | किताब | कीताब |
"""


def test_markdown_of_a_tiny_case():
    report = analyse(["कीताब"], ["किताब"], ["lines/00000__Hind-Regular.png"], engine="toy")
    assert to_markdown(report, chart="toy.png") == EXPECTED_MARKDOWN


def test_table_cells_are_escaped():
    md = to_markdown(analyse(["a|b"], ["a b"], ["x.png"]))
    assert "| 0.3333 | `x.png` | a b | a\\|b |" in md.splitlines()
    assert "| space U+0020 | \\| U+007C | 1 |" in md.splitlines()


@pytest.mark.parametrize("images, width", [(["d/00000__Hind-Regular.png", "d/00001__Kalam-Regular.png"], 1650),
                                           (["d/0.png", "d/1.png"], 1100)])  # a font panel only when fonts are known
def test_write_report_files(tmp_path, images, width):
    md, png = write_report(tmp_path / "out" / "r.md", ["कीताब", "जमीन"], ["किताब", "ज़मीन"], images, engine="toy")
    assert md == tmp_path / "out" / "r.md" and png == tmp_path / "out" / "r.png"
    assert "![error counts by class, CER by line length and font](r.png)" in md.read_text(encoding="utf-8")
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (width, 450)


def test_report_needs_references(capsys):
    with pytest.raises(SystemExit):
        infer.parse_args(["line.png", "--report", "r.md"])
    assert "--report needs references: give --data_dir" in capsys.readouterr().err
