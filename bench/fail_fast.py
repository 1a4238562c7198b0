#!/usr/bin/env python
"""How long a wrong local flag takes to be reported: `python train.py --data_dir /does/not/exist` (and an empty data
folder), with and without HF_HUB_OFFLINE. The data folder is checked before any network access or model loading,
so the time is Python's start and the imports. Prints a Markdown table of medians.

    python bench/fail_fast.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OFFLINE_ENV, REPO, machine, median, table  # noqa: E402


def timed(argv: list[str], offline: bool) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    return time.perf_counter() - start, (done.stderr.strip().splitlines() or [""])[-1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    empty = Path(tempfile.mkdtemp())
    cases = [("missing folder", "/does/not/exist"), ("empty folder", str(empty))]
    rows = []
    for name, folder in cases:
        for offline in (False, True):
            runs = [timed([sys.executable, str(REPO / "train.py"), "--data_dir", folder], offline)
                    for _ in range(args.rounds)]
            rows.append([name, "1" if offline else "unset", f"{median([t for t, _ in runs]):.1f} s", runs[0][1][:90]])
    print(machine(), "\n")
    print(table(["--data_dir", "HF_HUB_OFFLINE", f"median of {args.rounds}", "message"], rows))


if __name__ == "__main__":
    main()
