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
