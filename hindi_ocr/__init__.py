"""Shared library for fine-tuning GOT-OCR2 on Hindi (Devanagari) text lines."""

__version__ = "0.1.0"
