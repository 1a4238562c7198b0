"""Reading a corpus on many processes: ``torchrun --nproc_per_node N infer.py`` / ``accelerate launch infer.py``.

The input is cut into rounds of ``world x lines_per_share`` lines, in input order. In each round process ``r``
reads the ``r``-th contiguous share (``lines_per_share`` = batch size x lines per page, so a share is exactly one
batch of one process, and a batch, a page and a round start on the same line whatever the number of processes:
1 and N processes generate from the same batches and write the same bytes). The shares of a round are gathered on
the main process (``torch.distributed.gather_object``, gloo on CPU), put back in input order keyed by line index,
each index once, and handed on (printed, appended to ``--output``); only the main process writes.

A round whose lines run out before the last process gets an empty share for it, not repeated lines: nothing to
drop from the scores. :func:`merge` still keys by index and keeps one record per line, so a share scheme that
pads (accelerate's ``split_between_processes(apply_padding=True)`` repeats the last line) counts each line once.

Processes are set up as train.py's Trainer sets them up: accelerate's ``PartialState``, told the run is on CPU
when launched on a machine without an accelerator (gloo); without a launcher it is one process and nothing is
gathered.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections import Counter
from typing import Callable, Iterable, Iterator, Sequence

import torch

from .arguments import WORLD_SIZE_VARIABLES


def launched() -> bool:
    return max(int(os.environ.get(name) or 1) for name in WORLD_SIZE_VARIABLES) > 1


def start_processes():
    """accelerate's PartialState: a process group (gloo on CPU, NCCL on GPUs) under a launcher, else one process."""
    from accelerate import PartialState

    if launched():
        return PartialState(cpu=not torch.accelerator.is_available())
    return PartialState()


def end_processes(state) -> None:
    """Leave the process group (a process that exits without it aborts under gloo)."""
    if state.num_processes > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def rounds(lines: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` lines (the last one shorter), read lazily: a stream is never held whole."""
    it = iter(lines)
    while batch := list(itertools.islice(it, size)):
        yield batch


def share_bounds(count: int, lines_per_share: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of process ``rank``'s share of a round of ``count`` lines: contiguous, disjoint, covering."""
    start = min(rank * lines_per_share, count)
    stop = min(start + lines_per_share, count)
    return start, stop


def gather(state, item) -> list | None:
    """Every process's ``item``, in rank order, on the main process (None elsewhere)."""
    if state.num_processes == 1:
        return [item]
    out = [None] * state.num_processes if state.is_main_process else None
    torch.distributed.gather_object(item, out, dst=0)
    return out


def merge(parts: Sequence[Sequence[tuple[int, dict]]], first: int, count: int) -> list[dict]:
    """Records of lines ``first .. first + count - 1`` in input order, one per line, from ``(index, record)`` shares."""
    by_index = {}
    for part in parts:
        for index, record in part:
            by_index.setdefault(index, record)  # a padded share repeats a line: it counts once
    ordered = sorted(by_index.items())
    got = [index for index, _ in ordered]
    if got != list(range(first, first + count)):
        missing = sorted(set(range(first, first + count)) - set(got))
        raise RuntimeError(f"gathered lines {got[:5]}... for lines {first}..{first + count - 1}: "
                           f"{len(missing)} missing, {len(got) - count + len(missing)} extra")
    return [record for _, record in ordered]


def broadcast(state, value):
    """The main process's ``value`` on every process."""
    if state.num_processes == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def skip_done(state, lines: Iterable, done: list[dict], lines_per_share: int, out=None) -> tuple[Iterator, list]:
    """--resume: (the lines still to read, the records kept). The records already written are cut back to a share
    boundary, so the batches and pages of the rest start where an uninterrupted job's would (same output); the
    kept records must name the input's first lines, or the file belongs to another job."""
    keep = broadcast(state, len(done) // lines_per_share * lines_per_share)
    if out is not None and keep < len(done):
        out.keep(keep)
    done, rest = done[:keep], iter(lines)
    skipped = list(itertools.islice(rest, keep))
    if state.is_main_process and done:
        where = out.path if out is not None else "the output"
        if len(skipped) < keep:
            raise SystemExit(f"--resume: {where} holds {keep} lines but the input has only {len(skipped)}; "
                             "resume with the input that job read, or write another --output")
        for number, (line, record) in enumerate(zip(skipped, done), start=1):
            if record.get("image") != line.image:
                raise SystemExit(f"--resume: record {number} of {where} is for {record.get('image')!r}, but line "
                                 f"{number} of the input is {line.image!r}: that file is another job's output; "
                                 "resume with the same input, or write another --output")
    return rest, done


def read_in_order(state, lines: Iterable, read_share: Callable[[list], tuple[list[dict], dict]], *,
                  lines_per_share: int, on_records: Callable[[list[dict]], None], flush: Callable[[list[dict]], None],
                  first_index: int = 0, total: int | None = None, flush_seconds: float = 10.0) -> Counter:
    """Read ``lines`` on every process, each its share of each round; the main process gets every round's records
    in input order (``on_records``) and ``flush``-es them at most every ``flush_seconds`` and at the end.

    ``read_share(lines) -> (records, counts)``; the counts of all processes are summed into the returned Counter
    (on the main process), with ``lines`` and ``seconds`` of reading added. ``first_index``: the index of the first
    line (a resumed job); ``total``: all lines including those, for the progress bar (None: unknown, a stream).
    """
    from tqdm.auto import tqdm

    world, rank, main = state.num_processes, state.process_index, state.is_main_process
    bar = tqdm(total=total, initial=first_index, unit=" lines", disable=not main, file=sys.stderr,
               dynamic_ncols=True, smoothing=0.1)
    counts, pending, index = Counter(), [], first_index
    started = last_flush = time.perf_counter()
    for batch in rounds(lines, lines_per_share * world):
        start, stop = share_bounds(len(batch), lines_per_share, rank, world)
        records, share_counts = read_share(batch[start:stop]) if stop > start else ([], {})
        shares = gather(state, (list(zip(range(index + start, index + stop), records)), dict(share_counts)))
        if main:
            merged = merge([share for share, _ in shares], index, len(batch))
            for _, share_counts in shares:
                counts.update(share_counts)
            on_records(merged)
            pending += merged
            if time.perf_counter() - last_flush >= flush_seconds:
                flush(pending)
                pending, last_flush = [], time.perf_counter()
            bar.update(len(batch))
        index += len(batch)
    if main:
        flush(pending)
        bar.close()
    counts["lines"] = index - first_index
    counts["seconds"] = time.perf_counter() - started
    return counts
