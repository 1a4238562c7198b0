"""Tesseract as the baseline: read line images with the ``tesseract`` CLI (``-l hin --psm 7``).

Why the CLI through ``subprocess`` and not pytesseract: pytesseract is itself a wrapper that runs this binary once
per image through temporary files, so it would add a dependency and no capability. The CLI can also read many
images in one process from a list file, loading the ``hin`` model once, which is what a throughput figure wants.
Why ``--psm 7`` ("treat the image as a single text line"): our inputs are line crops; the default page
segmentation looks for blocks and columns and drops or splits short lines.

Images are converted with :func:`hindi_ocr.examples.to_rgb` first, so Tesseract sees the same upright RGB pixels
on white as our model (EXIF rotation, 16-bit scans and transparent PNGs would otherwise differ between engines).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

ENV_VAR = "TESSERACT_CMD"
INSTALL_HINT = ("Install Tesseract and its Hindi model: `apt-get install tesseract-ocr tesseract-ocr-hin` "
                "(Debian/Ubuntu) or `brew install tesseract tesseract-lang` (macOS).")
PAGE_SEPARATOR = "\f"  # what the CLI writes between the texts of a list file's images


class TesseractUnavailable(SystemExit):
    """The binary or its language model is missing; the message says what to install (exits the CLI with it)."""


@dataclass(frozen=True)
class Tesseract:
    """A located, checked ``tesseract`` binary; :meth:`read` runs it over line images."""

    path: str
    version: str
    lang: str = "hin"
    psm: int = 7

    @property
    def engine(self) -> str:
        return f"Tesseract {self.version} ({self.lang}, psm {self.psm})"

    def _run(self, source: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.path, source, "stdout", "-l", self.lang, "--psm", str(self.psm)],
                              capture_output=True, check=False)

    def _read_one(self, image_path: str) -> str:
        done = self._run(image_path)
        if done.returncode != 0:
            raise RuntimeError(f"tesseract failed on {image_path} (exit {done.returncode}): "
                               f"{done.stderr.decode('utf-8', 'replace').strip()}")
        return clean(done.stdout.decode("utf-8"))

    def read(self, images: Sequence[str]) -> list[str]:
        """The text of each line image, in order: NFC, trailing newline/form feed stripped.

        One process reads them all from a list file; if its output does not split into one text per image
        (a multi-page TIFF, an unreadable file) each image is read on its own, so a failure names its file.
        """
        if not images:
            return []
        from .examples import to_rgb  # imports torch: only when reading

        with tempfile.TemporaryDirectory(prefix="hindi-ocr-tesseract-") as tmp:
            converted = []
            for i, image in enumerate(images):
                with Image.open(image) as opened:
                    converted.append(os.path.join(tmp, f"{i:06d}.png"))
                    to_rgb(opened).save(converted[-1])
            listing = os.path.join(tmp, "images.txt")
            Path(listing).write_text("\n".join(converted) + "\n", encoding="utf-8")
            done = self._run(listing)
            pages = done.stdout.decode("utf-8").split(PAGE_SEPARATOR)
            if done.returncode == 0 and len(pages) == len(images):
                return [clean(page) for page in pages]
            return [self._read_one(path) for path in converted]


def clean(text: str) -> str:
    """One page of CLI output as a line: NFC, without the trailing newline / form feed the CLI adds."""
    return unicodedata.normalize("NFC", text).rstrip("\n\f")


def locate(cmd: str | None = None, lang: str = "hin", psm: int = 7) -> Tesseract:
    """The binary from ``cmd`` (``--tesseract_cmd``), else ``$TESSERACT_CMD``, else ``tesseract`` on PATH.

    Raises :class:`TesseractUnavailable` naming what was tried and what to install when the binary does not run
    or has no ``lang`` model.
    """
    if cmd:
        tried = f"--tesseract_cmd {cmd}"
    elif os.environ.get(ENV_VAR):
        cmd, tried = os.environ[ENV_VAR], f"{ENV_VAR}={os.environ[ENV_VAR]}"
    else:
        cmd, tried = "tesseract", "`tesseract` on PATH"
    path = shutil.which(cmd)
    if path is None:
        raise TesseractUnavailable(f"Tesseract not found: tried {tried}. {INSTALL_HINT} "
                                   f"Or give the binary's path with --tesseract_cmd or {ENV_VAR}.")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
        langs = subprocess.run([path, "--list-langs"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise TesseractUnavailable(f"Tesseract at {path} (tried {tried}) does not run: {err}. {INSTALL_HINT}") from None
    header, *available = (langs.stdout + langs.stderr).strip().splitlines() or [""]
    if lang not in {name.strip() for name in available}:
        folder = header.split('"')[1] if header.count('"') >= 2 else "its tessdata folder"
        prefix = f" (TESSDATA_PREFIX={os.environ['TESSDATA_PREFIX']})" if os.environ.get("TESSDATA_PREFIX") else ""
        raise TesseractUnavailable(f"Tesseract at {path} (tried {tried}) has no `{lang}` model: no {lang}.traineddata "
                                   f"in {folder}{prefix}. {INSTALL_HINT}")
    first = (version.stdout or version.stderr).split()
    return Tesseract(path, first[1] if len(first) > 1 else "?", lang, psm)
