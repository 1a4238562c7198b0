"""Unicode handling shared by the dataset builder, the metrics and the model I/O."""

import re
import unicodedata

ZERO_WIDTH_JOINERS = "\u200c\u200d"  # ZWNJ, ZWJ
_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Canonical form stored in datasets and used as training targets: NFC, outer whitespace stripped.

    ZWJ/ZWNJ are kept: they change how a conjunct is drawn, so a transcription may legitimately carry them.
    """
    return unicodedata.normalize("NFC", text).strip()


def normalize_for_scoring(text: str, keep_zero_width: bool = False) -> str:
    """Form compared by CER/WER: NFC, ZWJ/ZWNJ dropped (unless asked), whitespace collapsed and stripped."""
    text = unicodedata.normalize("NFC", text)
    if not keep_zero_width:
        text = text.translate({ord(c): None for c in ZERO_WIDTH_JOINERS})
    return _WHITESPACE.sub(" ", text).strip()


LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on


def text_problem(text: str) -> tuple[str, str] | None:
    """(reason, detail) when a line's text (NFC, stripped) cannot be a training target: empty, a line break (a row
    is one text line; on a page, a line's break would pass for the next line), or a control character that is not
    whitespace (NUL, ESC, DEL, C1...)."""
    if not text:
        return "empty_text", "text is empty or whitespace-only"
    for position, char in enumerate(text, 1):
        if char in LINE_BREAKS:
            return "line_break", (f"text has a line break (U+{ord(char):04X} at position {position}); a row is one "
                                  "text line: join its lines with a space, or give each line its own image and row")
        if unicodedata.category(char) == "Cc" and not char.isspace():
            return "control_character", (f"text has control character U+{ord(char):04X} at position {position}; "
                                         "remove it (a transcription never contains one: the file may be corrupt)")
    return None
