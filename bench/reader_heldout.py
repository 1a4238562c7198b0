#!/usr/bin/env python
"""Write the reader's held-out lines (``hindi_ocr.pretrain``'s evaluation set: Common Voice windows of 2-4 words
in Mukta and Poppins, never trained on) as a seed-layout folder, so that any reader reads exactly those images:

    python bench/reader_heldout.py /tmp/heldout [--n 200]
    python bench/vs_tesseract.py --model_name_or_path READER_DIR --data_dir /tmp/heldout
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hindi_ocr.pretrain import write_heldout_folder  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0, help="the pretraining run's --seed")
    args = p.parse_args(argv)
    texts = write_heldout_folder(args.out_dir, args.n, args.seed)
    print(f"{len(texts)} held-out lines in {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
