"""Shared pieces of the benchmark scripts: fixtures in /tmp, child processes, RSS sampling, tables.

Nothing here is imported by the library or the tests. Fixtures (tiny models, rendered line folders) are written
under ``$HINDI_OCR_BENCH_DIR`` (default ``/tmp/hindi-ocr-bench``) and reused between runs.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(os.environ.get("HINDI_OCR_BENCH_DIR", "/tmp/hindi-ocr-bench"))
PROMPT = "<image>Transcribe the text in this image"

# Offline everywhere: the Hub is unreachable here and nothing should try it.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MODELSCOPE_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",
}
os.environ.update(OFFLINE_ENV)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def tiny_model(image_size: int) -> Path:
    """The project's tiny random-init GOT-OCR2 at ``image_size`` (1024: GOT's real input, 256 image tokens)."""
    out = BENCH_DIR / f"tiny-{image_size}"
    if not (out / "model.safetensors").is_file():
        from hindi_ocr.tiny import build_tiny_model

        build_tiny_model(out, image_size=image_size)
    return out


def line_folder(n: int = 64, seed: int = 0, height: int = 64) -> Path:
    """``n`` synthetic Hindi lines rendered once, in both layouts the contenders read.

    * the seed CSV layout: ``data.csv`` (image_file,text) + ``output_images/*.png`` (train.py --data_dir);
    * ms-swift rows: ``rows.json``, ``[{"query", "response", "images": [absolute path]}]`` (swift sft --dataset).
    """
    out = BENCH_DIR / f"lines-{n}-{seed}-{height}"
    if (out / "rows.json").is_file():
        return out
    from hindi_ocr.render import generate_lines, render_sample

    images = out / "output_images"
    images.mkdir(parents=True, exist_ok=True)
    texts = generate_lines(n, seed=seed)
    rows = []
    with open(out / "data.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_file", "text"])
        for i, text in enumerate(texts):
            image, _ = render_sample(text, rng=seed * 100_003 + i, height=height)
            name = f"{i:05d}.png"
            image.save(images / name)
            writer.writerow([name, text])
            rows.append({"query": PROMPT, "response": text, "images": [str(images / name)]})
    (out / "rows.json").write_text(json.dumps(rows, ensure_ascii=False, indent=0), encoding="utf-8")
    return out


class TreeRss:
    """Peak resident memory of a process and all its descendants (sum of RSS), sampled every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_measured(cmd: list[str], env: dict | None = None, cwd=None, log: Path | None = None,
                 timeout: float | None = None) -> dict:
    """Run ``cmd``; return its exit code, wall seconds, peak tree RSS (bytes), stdout+stderr text."""
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    with TreeRss(proc.pid) as rss:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            output += f"\n[bench] killed after {timeout} s"
    wall = time.perf_counter() - start
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output, encoding="utf-8")
    return {"returncode": proc.returncode, "wall_s": wall, "peak_rss": rss.peak, "output": output}


def last_json_line(text: str, marker: str = "BENCH_RESULT ") -> dict | None:
    """The JSON object a child printed after ``marker`` (the last one)."""
    found = None
    for line in text.splitlines():
        if line.startswith(marker):
            found = json.loads(line[len(marker):])
    return found


def emit(result: dict, marker: str = "BENCH_RESULT ") -> None:
    print(marker + json.dumps(result), flush=True)


def self_peak_rss() -> int:
    """This process's peak RSS in bytes (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def mib(n_bytes) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2**20:,.0f}"


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (pastes into BENCHMARKS.md as is)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "| " + " | ".join("-" * w for w in widths) + " |"] + [line(r) for r in cells])


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{datetime.date.today().isoformat()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}")
