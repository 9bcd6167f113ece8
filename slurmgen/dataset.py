"""Reading the input: whole-file checks before a run, and one shard's rows for a peer.

Row *k* (0-based, counting non-empty lines) belongs to shard ``k % shards``. A line
that is not JSON, or a row that does not match the workflow's row type, is yielded as
a ``BadRow`` (it becomes a failed record naming the line and the field); the run goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import msgspec

from slurmgen.errors import DatasetError


@dataclass(frozen=True)
class GoodRow:
    lineno: int
    row_id: str
    raw: bytes  # the line, as read (JSON)


@dataclass(frozen=True)
class BadRow:
    lineno: int
    row_id: str  # "line-<n>"
    reason: str


def check_path(path: str) -> Path:
    """Fail before anything starts if the dataset cannot be read as a file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"dataset.path={path!r} does not exist; give a JSONL file (one JSON object per line)")
    if p.is_dir():
        raise DatasetError(f"dataset.path={path!r} is a directory; give a JSONL file inside it")
    if not os.access(p, os.R_OK):
        raise DatasetError(f"dataset.path={path!r} is not readable by this user")
    return p.resolve()


def iter_lines(path: Path, limit: int) -> Iterator[tuple[int, int, bytes]]:
    """(row index, 1-based line number, line) for non-empty lines, up to ``limit`` rows."""
    index = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            if limit and index >= limit:
                return
            yield index, lineno, line
            index += 1


def count_rows(path: Path, limit: int) -> int:
    return sum(1 for _ in iter_lines(path, limit))


def parse_row(lineno: int, line: bytes, row_type: type[msgspec.Struct]) -> GoodRow | BadRow:
    try:
        row = msgspec.json.decode(line, type=row_type)
    except msgspec.ValidationError as exc:
        return BadRow(lineno, f"line-{lineno}", f"bad_input: line {lineno}: {exc}")
    except msgspec.DecodeError as exc:
        return BadRow(lineno, f"line-{lineno}", f"bad_input: line {lineno}: not valid JSON ({exc})")
    row_id = str(row.row_id())  # type: ignore[attr-defined]
    if not row_id:
        return BadRow(lineno, f"line-{lineno}", f"bad_input: line {lineno}: empty row id")
    return GoodRow(lineno, row_id, line)


def iter_shard(path: Path, limit: int, shard: int, shards: int,
               row_type: type[msgspec.Struct]) -> Iterator[GoodRow | BadRow]:
    for index, lineno, line in iter_lines(path, limit):
        if index % shards == shard:
            yield parse_row(lineno, line, row_type)
