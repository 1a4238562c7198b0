"""Error analysis of OCR output: which characters are misread, dropped or invented; by class, line length and font.

Why: one CER does not say where to look. Devanagari OCR errors gather in the marks (matras, nukta, virama,
anusvara) and in conjuncts, and differ by font and line length; counts per class and per group point at the
data, fonts or resolution to fix.

Each line's reference and prediction are normalised and split exactly as :mod:`hindi_ocr.scoring` does for CER
(code points of the normalised text) and aligned with jiwer's Levenshtein alignment, the computation behind CER,
so substitutions + deletions + insertions here add up to the CER numerator. Conjuncts are judged on the grapheme
units of grapheme_CER: a reference akshara holding a virama counts as wrong unless it is matched whole.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import jiwer

from .render import font_of
from .scoring import edit_counts, score, tokenize
from .text import normalize_for_scoring

VIRAMA = "\u094d"
CHAR_CLASSES = ("matra", "nukta", "virama", "anusvara/chandrabindu/visarga", "independent vowel", "consonant",
                "digit", "danda/punctuation", "Latin", "space", "other")
LENGTH_BUCKETS = ((10, "1-10"), (20, "11-20"), (40, "21-40"), (80, "41-80"), (None, "81+"))  # reference chars


def char_class(char: str) -> str:
    """The class of one code point, one of :data:`CHAR_CLASSES` (text is NFC, so no precomposed nukta letters)."""
    cp = ord(char)
    if 0x093E <= cp <= 0x094C or 0x0962 <= cp <= 0x0963:
        return "matra"
    if cp == 0x093C:
        return "nukta"
    if cp == 0x094D:
        return "virama"
    if 0x0900 <= cp <= 0x0903:
        return "anusvara/chandrabindu/visarga"
    if 0x0904 <= cp <= 0x0914 or 0x0960 <= cp <= 0x0961 or 0x0972 <= cp <= 0x0977:
        return "independent vowel"
    if 0x0915 <= cp <= 0x0939 or 0x0958 <= cp <= 0x095F or 0x0978 <= cp <= 0x097F:
        return "consonant"
    if 0x0966 <= cp <= 0x096F or "0" <= char <= "9":
        return "digit"
    if char.isspace():
        return "space"
    if cp in (0x0964, 0x0965, 0x0970) or unicodedata.category(char)[0] in "PS":
        return "danda/punctuation"
    if unicodedata.name(char, "").startswith("LATIN"):
        return "Latin"
    return "other"


def _same(units):
    return units


def align(prediction_units: List[str], reference_units: List[str]) -> List[Tuple[str, Optional[str], Optional[str]]]:
    """``(op, reference unit, predicted unit)`` per step of jiwer's alignment; op is equal/substitute/delete/insert."""
    if not reference_units:  # older jiwer refuses an empty reference; every predicted unit is an insertion
        return [("insert", None, unit) for unit in prediction_units]
    out = jiwer.process_words([reference_units], [prediction_units], reference_transform=_same,
                              hypothesis_transform=_same)
    steps = []
    for chunk in out.alignments[0]:
        refs = reference_units[chunk.ref_start_idx:chunk.ref_end_idx]
        preds = prediction_units[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type == "delete":
            steps += [("delete", unit, None) for unit in refs]
        elif chunk.type == "insert":
            steps += [("insert", None, unit) for unit in preds]
        else:  # equal / substitute: the same number of units on both sides
            steps += [(chunk.type, r, p) for r, p in zip(refs, preds)]
    return steps


def groups(keys: Sequence) -> Dict[object, List[int]]:
    """Line indices by key, keys in sorted order (None, an unknown key, last)."""
    out: Dict[object, List[int]] = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return dict(sorted(out.items(), key=lambda item: (item[0] is None, str(item[0]))))


def _length_bucket(n_chars: int) -> str:
    return next(label for limit, label in LENGTH_BUCKETS if limit is None or n_chars <= limit)


@dataclass
class ErrorReport:
    """Counts behind the Markdown and the chart (see :func:`analyse`)."""

    engine: str
    n: int
    scores: Dict[str, float]
    substitutions: Counter = field(default_factory=Counter)  # (reference char, predicted char) -> count
    deletions: Counter = field(default_factory=Counter)  # reference char -> count
    insertions: Counter = field(default_factory=Counter)  # predicted char -> count
    reference_chars: Counter = field(default_factory=Counter)  # class -> reference chars of that class
    conjuncts: int = 0  # reference graphemes holding a virama
    conjunct_errors: Counter = field(default_factory=Counter)  # (reference grapheme, read as) -> count
    worst: List[Tuple[float, str, str, str]] = field(default_factory=list)  # (line CER, image, reference, prediction)
    by_length: List[Tuple[str, int, float]] = field(default_factory=list)  # (bucket, lines, CER)
    by_font: Optional[List[Tuple[str, int, float]]] = None  # None when no image name carries a font

    def by_class(self) -> Dict[str, Dict[str, int]]:
        """Per class: reference chars, substituted/deleted (class of the reference char), inserted (predicted char)."""
        table = {c: {"reference": self.reference_chars[c], "substituted": 0, "deleted": 0, "inserted": 0}
                 for c in CHAR_CLASSES}
        for (ref, _), count in self.substitutions.items():
            table[char_class(ref)]["substituted"] += count
        for ref, count in self.deletions.items():
            table[char_class(ref)]["deleted"] += count
        for pred, count in self.insertions.items():
            table[char_class(pred)]["inserted"] += count
        return {c: row for c, row in table.items() if any(row.values())}


def _rates(indices: Dict[object, List[int]], predictions, references) -> List[Tuple[str, int, float]]:
    return [("(unknown)" if key is None else str(key), len(idx),
             edit_counts([predictions[i] for i in idx], [references[i] for i in idx]).rate)
            for key, idx in indices.items()]


def analyse(predictions: Sequence[str], references: Sequence[str], images: Sequence[str] | None = None,
            engine: str = "", worst: int = 10) -> ErrorReport:
    """Align every line and count errors by character, class, conjunct, length bucket and (when known) font."""
    images = list(images) if images is not None else [""] * len(references)
    report = ErrorReport(engine, len(references), score(predictions, references))
    line_cers = []
    for pred, ref in zip(predictions, references):
        ref_chars = tokenize(ref)
        for op, r, p in align(tokenize(pred), ref_chars):
            if op == "substitute":
                report.substitutions[(r, p)] += 1
            elif op == "delete":
                report.deletions[r] += 1
            elif op == "insert":
                report.insertions[p] += 1
        report.reference_chars.update(char_class(c) for c in ref_chars)
        for op, r, p in align(tokenize(pred, "grapheme_cer"), tokenize(ref, "grapheme_cer")):
            if r is not None and VIRAMA in r:
                report.conjuncts += 1
                if op != "equal":
                    report.conjunct_errors[(r, p or "")] += 1
        line_cers.append(edit_counts([pred], [ref]).rate)
    ranked = sorted((i for i, cer in enumerate(line_cers) if cer > 0), key=lambda i: -line_cers[i])
    report.worst = [(line_cers[i], images[i], references[i], predictions[i]) for i in ranked[:worst]]
    buckets = [_length_bucket(len(tokenize(ref))) for ref in references]
    order = [label for _, label in LENGTH_BUCKETS]
    by_length = groups(buckets)
    report.by_length = sorted(_rates(by_length, predictions, references), key=lambda row: order.index(row[0]))
    fonts = [font_of(image) for image in images]
    if any(fonts):
        report.by_font = _rates(groups(fonts), predictions, references)
    return report


def _show(char: str) -> str:
    """A character for a table cell: combining marks on a dotted circle, plus the code point."""
    if char == " ":
        return "space U+0020"
    base = "\u25cc" + char if unicodedata.category(char) in ("Mn", "Mc") else _cell(char)
    return f"{base} U+{ord(char):04X}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes and Markdown punctuation escaped)."""
    return "".join("\\" + c if c in "\\|*_`<>[]#" else c for c in text.replace("\n", " "))


def _code(name: str) -> str:
    return f"`{name}`" if name and "`" not in name else _cell(name)


def _scored_text(text: str) -> str:
    """A line as CER compares it (normalised); an empty one is spelled out rather than left a blank cell."""
    return normalize_for_scoring(text) or "(empty)"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _most(counter: Counter, top: int):
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:top]


def to_markdown(report: ErrorReport, chart: str | None = None, top: int = 20) -> str:
    """The report as Markdown; ``chart`` is the PNG's file name, linked at the top."""
    s = report.scores
    n_sub, n_del, n_ins = (sum(c.values()) for c in (report.substitutions, report.deletions, report.insertions))
    out = [f"# Error report: {report.engine}" if report.engine else "# Error report", "",
           f"{report.n} line{'s' if report.n != 1 else ''}. CER {s['cer']:.4f}, WER {s['wer']:.4f}, "
           f"grapheme_CER {s['grapheme_cer']:.4f} "
           f"(texts normalised as for scoring: NFC, ZWJ/ZWNJ dropped, whitespace collapsed).",
           f"Character edits: {n_sub} substituted, {n_del} deleted, {n_ins} inserted, over "
           f"{sum(report.reference_chars.values())} reference characters.", ""]
    if chart:
        out += [f"![error counts by class, CER by line length and font]({chart})", ""]
    rows = [[name, c["reference"], c["substituted"], c["deleted"], c["inserted"],
             f"{(c['substituted'] + c['deleted']) / c['reference']:.4f}" if c["reference"] else "-"]
            for name, c in report.by_class().items()]
    out += ["## Errors by character class", "",
            markdown_table(["class", "in references", "substituted", "deleted", "inserted",
                            "(substituted + deleted) / in references"], rows), "",
            "Substituted and deleted characters count in the class of the reference character, inserted ones in the "
            "class of the predicted character.", ""]
    wrong = sum(report.conjunct_errors.values())
    out += ["## Conjuncts", "", f"Reference graphemes holding a virama: {report.conjuncts}; read wrong: {wrong}"
            + (f" ({wrong / report.conjuncts:.4f})." if report.conjuncts else "."), ""]
    if wrong:
        out += [markdown_table(["reference grapheme", "read as", "count"],
                               [[_cell(r), "(deleted)" if not p else _cell(p) if p.strip() else "space", n]
                                for (r, p), n in _most(report.conjunct_errors, top)]), ""]
    for title, counter, headers, show in (
            ("Most frequent substitutions", report.substitutions, ["reference", "prediction", "count"],
             lambda key: [_show(key[0]), _show(key[1])]),
            ("Most frequent deletions", report.deletions, ["reference", "count"], lambda key: [_show(key)]),
            ("Most frequent insertions", report.insertions, ["prediction", "count"], lambda key: [_show(key)])):
        body = markdown_table(headers, [show(k) + [n] for k, n in _most(counter, top)]) if counter else "None."
        out += [f"## {title}", "", body, ""]
    out += ["## CER by line length", "",
            markdown_table(["reference characters", "lines", "CER"],
                           [[b, n, f"{cer:.4f}"] for b, n, cer in report.by_length]), ""]
    if report.by_font is not None:
        out += ["## CER by font", "",
                markdown_table(["font", "lines", "CER"],
                               [[font, n, f"{cer:.4f}"] for font, n, cer in report.by_font]), ""]
    out += [f"## Worst lines ({len(report.worst)})", ""]
    out += [markdown_table(["line CER", "image", "reference", "prediction"],
                           [[f"{cer:.4f}", _code(Path(image).name), _cell(_scored_text(ref)), _cell(_scored_text(pred))]
                            for cer, image, ref, pred in report.worst]) if report.worst else "No line has errors."]
    return "\n".join(out) + "\n"


def draw_chart(report: ErrorReport, path) -> None:
    """Bar charts (PNG, matplotlib's Agg canvas, no display needed): errors by class, CER by length and by font."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 3 if report.by_font else 2
    fig = Figure(figsize=(5.5 * panels, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    classes = report.by_class()
    names = list(classes)[::-1]  # top to bottom in CHAR_CLASSES order
    left = [0] * len(names)
    for kind in ("substituted", "deleted", "inserted"):
        values = [classes[name][kind] for name in names]
        axes[0].barh(names, values, left=left, label=kind)
        left = [a + b for a, b in zip(left, values)]
    axes[0].set(title="character errors by class", xlabel="count")
    axes[0].legend(loc="best")
    axes[1].bar([b for b, _, _ in report.by_length], [cer for _, _, cer in report.by_length])
    axes[1].set(title="CER by line length", xlabel="reference characters", ylabel="CER")
    if report.by_font:
        axes[2].barh([f for f, _, _ in report.by_font][::-1], [cer for _, _, cer in report.by_font][::-1])
        axes[2].set(title="CER by font", xlabel="CER")
    fig.suptitle(report.engine or "error report")
    fig.savefig(path, format="png", dpi=100)


def write_report(path, predictions: Sequence[str], references: Sequence[str], images: Sequence[str] | None = None,
                 engine: str = "", worst: int = 10) -> Tuple[Path, Path]:
    """Write ``path`` (Markdown) and the chart beside it (same name, ``.png``); returns both paths."""
    md_path = Path(path)
    png_path = md_path.with_suffix(".png")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    report = analyse(predictions, references, images, engine, worst)
    draw_chart(report, png_path)
    md_path.write_text(to_markdown(report, chart=png_path.name), encoding="utf-8")
    return md_path, png_path
