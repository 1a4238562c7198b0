"""Helpers for the demo and Space tests: a "loud" tiny model, a demo server on a free port, infer.py's readings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from hindi_ocr.tiny import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
LOUDNESS = 8.0


def loud_tiny_model(folder: Path) -> Path:
    """The tiny model with its language model's weights (embeddings, tied head, projections) times LOUDNESS."""
    from safetensors.torch import load_file, save_file

    build_tiny_model(folder)
    weights = load_file(folder / "model.safetensors")
    weights = {name: w * LOUDNESS if "language_model" in name and "norm" not in name else w
               for name, w in weights.items()}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_env(**extra) -> dict:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}
    return env


def wait_for_page(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the demo exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if opener.open(url, timeout=5).status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the demo did not answer at {url}:\n{log.read_text()[-4000:]}")


def start_demo(args: list[str], log: Path, cwd: Path = REPO, env: dict | None = None):
    """``python ARGS`` serving on a free port; returns (process, url). The caller terminates the process."""
    port = free_port()
    handle = log.open("w")
    process = subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                               env={**(env or local_env()), "GRADIO_SERVER_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_page(url, process, log)
    except BaseException:
        process.kill()
        raise
    return process, url


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def infer_predictions(args: list[str], images: list[Path], out: Path, env: dict | None = None) -> dict[str, str]:
    """infer.py's reading of each image (its JSONL output: exact strings, tabs and newlines included)."""
    done = subprocess.run([sys.executable, "infer.py", *args, *map(str, images), "--output", str(out)], cwd=REPO,
                          env=env or local_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {Path(r["image"]).name: r["prediction"] for r in map(json.loads, out.read_text("utf-8").splitlines())}
