"""Duplicate row ids, found before anything starts.

Two rows with one id would give two tasks with one task id: one of them overwritten or
lost. One pass over the input keeps an 8-byte digest per row (80 MB for 10 M rows), sorts
them, and looks up the lines of the few digests seen twice in a second pass. Then, per
``dataset.on_duplicate``: ``refuse`` (default) names the first duplicates and their lines;
``suffix`` renames the 2nd, 3rd, ... occurrence ``id#2``, ``id#3`` in input order; ``skip``
keeps the first. The renames and skips, by row index, go to ``RUN/state/duplicates.json``,
which every peer applies to its shard, so that all agree.
"""

from __future__ import annotations

import collections
import hashlib
from array import array
from pathlib import Path
from typing import Iterable, Iterator

import msgspec
import numpy as np

from slurmgen.errors import ConfigError, DatasetError

MODES = ("refuse", "suffix", "skip")
SHOW = 5  # duplicates named in the error


class Duplicates(msgspec.Struct, kw_only=True):
    """What the peers apply: row index -> new id (suffix), or the row indexes to skip."""

    mode: str = "refuse"
    renamed: dict[int, str] = {}
    skipped: list[int] = []
    id_columns: list[str] | None = None  # the fields the id scan read (None: rows parsed whole)


def digest(row_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8).digest(), "little")


def scan(ids: Iterator[tuple[int, int, str]], rows_again: Iterable[tuple[int, int, str]], mode: str,
         source: str) -> tuple[int, Duplicates]:
    """(row index, line, id) twice over: the number of rows and what to do about duplicates."""
    if mode not in MODES:
        raise ConfigError(f"dataset.on_duplicate={mode!r} is unknown; valid: {', '.join(MODES)}")
    digests = array("Q")
    for _, _, row_id in ids:
        digests.append(digest(row_id))
    rows = len(digests)
    ordered = np.sort(np.frombuffer(digests, dtype=np.uint64))  # 8 bytes a row, sorted in C
    twice = {int(d) for d in ordered[1:][ordered[1:] == ordered[:-1]]}
    del ordered, digests
    if not twice:
        return rows, Duplicates(mode=mode)
    seen: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for index, lineno, row_id in rows_again:
        if digest(row_id) in twice:
            seen[row_id].append((index, lineno))
    dups = {row_id: at for row_id, at in seen.items() if len(at) > 1}  # (a digest collision is not a duplicate)
    if not dups:
        return rows, Duplicates(mode=mode)
    if mode == "refuse":
        first = sorted(dups.items(), key=lambda kv: kv[1][1][0])[:SHOW]
        listed = "; ".join(f"{row_id!r} on lines {', '.join(str(line) for _, line in at[:4])}" for row_id, at in first)
        raise DatasetError(f"{source}: {sum(len(a) - 1 for a in dups.values())} rows repeat an id of an earlier row "
                           f"({len(dups)} ids), e.g. {listed}. Every row needs its own id (the task ids are "
                           "<row id>:<trial>): fix the data, or pass dataset.on_duplicate=suffix (id#2, id#3, ...) "
                           "or dataset.on_duplicate=skip (keep the first)")
    later = [(index, row_id, n) for row_id, at in dups.items() for n, (index, _) in enumerate(at[1:], start=2)]
    if mode == "skip":
        return rows, Duplicates(mode=mode, skipped=sorted(index for index, _, _ in later))
    return rows, Duplicates(mode=mode, renamed={index: f"{row_id}#{n}" for index, row_id, n in later})


def path(state_dir: Path) -> Path:
    return state_dir / "duplicates.json"


def load(state_dir: Path) -> Duplicates:
    p = path(state_dir)
    return msgspec.json.decode(p.read_bytes(), type=Duplicates) if p.exists() else Duplicates()
