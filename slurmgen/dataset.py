"""Reading the input: whole-file checks before a run, and one shard's rows for a peer.

Row *k* (0-based, counting non-empty lines) belongs to shard ``k % shards``. A line
that is not JSON, or a row that does not match the workflow's row type, is yielded as
a ``BadRow`` (it becomes a failed record naming the line and the field); the run goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import msgspec

from slurmgen.duplicates import Duplicates
from slurmgen import inputs
from slurmgen.errors import DatasetError


@dataclass(frozen=True)
class GoodRow:
    lineno: int
    row_id: str
    raw: bytes  # the line, as read (JSON)


@dataclass(frozen=True)
class BadRow:
    lineno: int
    row_id: str  # the row's own id when it could be read, else "line-<n>" (JSONL) or "row-<n>"
    reason: str
    raw: bytes | None = None  # the row as JSON when it could be read (invalid UTF-8 replaced)


def check_path(path: str) -> Path:
    """Fail before anything starts if the dataset cannot be read (missing, unreadable, a format
    slurmgen does not read)."""
    if path.startswith(inputs.HUB):
        inputs.load_hub(path)
        return Path(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"dataset.path={path!r} does not exist; give one of: {inputs.ACCEPTED}")
    if not os.access(p, os.R_OK):
        raise DatasetError(f"dataset.path={path!r} is not readable by this user")
    inputs.detect(p)
    return p.resolve()


def iter_lines(path: Path, limit: int) -> Iterator[tuple[int, int, bytes]]:
    """(row index, 1-based line or row number, the row as JSON) for every row, up to ``limit``."""
    return inputs.read(path, inputs.detect(path), limit)


def unit(path: Path) -> str:
    """What a position counts in this input's messages: lines of JSONL, rows of the others."""
    return "line" if inputs.detect(path).startswith("jsonl") else "row"


def count_rows(path: Path, limit: int) -> int:
    return sum(1 for _ in iter_lines(path, limit))


def parse_row(lineno: int, line: bytes, row_type: type[msgspec.Struct], max_bytes: int = 0,
              unit: str = "line") -> GoodRow | BadRow:
    """One row, or why it is bad; never raises (any exception here would stop a shard)."""
    where = f"bad_input: {unit} {lineno}"
    if max_bytes and len(line) > max_bytes:
        return BadRow(lineno, f"{unit}-{lineno}", f"{where}: {len(line)} bytes, over dataset.max_row_bytes={max_bytes}")
    try:  # the whole line: msgspec skips unknown fields without checking their bytes
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = line.decode("utf-8", errors="replace").encode()
        return _bad(f"{unit}-{lineno}", lineno, f"{where}: not valid UTF-8 at byte {exc.start} ({exc.reason})", text, row_type)
    try:
        row = msgspec.json.decode(line, type=row_type)
    except msgspec.ValidationError as exc:  # a wrong type or a missing field: keep its id if it has one
        return BadRow(lineno, _lenient_id(line, row_type) or f"{unit}-{lineno}", f"{where}: {exc}", line)
    except msgspec.DecodeError as exc:
        return BadRow(lineno, f"{unit}-{lineno}", f"{where}: not valid JSON ({exc})")
    try:
        row_id = str(row.row_id())  # type: ignore[attr-defined]
    except Exception as exc:  # the workflow's row_id() failed on this row
        return BadRow(lineno, f"{unit}-{lineno}", f"{where}: row_id() failed: {type(exc).__name__}: {exc}", line)
    if not row_id:
        return BadRow(lineno, f"{unit}-{lineno}", f"{where}: empty row id", line)
    return GoodRow(lineno, row_id, line)


@functools.lru_cache(maxsize=None)
def _lenient(row_type: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """``row_type``'s fields, each optional and any JSON value (a nested Struct: its own lenient
    type): what a row that fails validation still holds, under the same attribute names."""
    fields = [(f.name, (_lenient(f.type) | None) if _is_struct(f.type) else Any, _ABSENT)
              for f in msgspec.structs.fields(row_type)]
    rename = {f.name: f.encode_name for f in msgspec.structs.fields(row_type)}
    return msgspec.defstruct(f"Lenient{row_type.__name__}", fields, kw_only=True, rename=rename)


class _Absent:
    """A field the row does not have: any use of it in row_id() raises (no id is made of it)."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)

    def __str__(self) -> str:
        raise ValueError("absent field")

    __repr__ = __format__ = __str__  # type: ignore[assignment]


_ABSENT = _Absent()


def _is_struct(t: object) -> bool:
    return isinstance(t, type) and issubclass(t, msgspec.Struct)


def _lenient_id(line: bytes, row_type: type[msgspec.Struct]) -> str:
    """The id ``row_type.row_id`` gives the row's readable fields, or "" when it cannot."""
    try:
        row = msgspec.json.decode(line, type=_lenient(row_type))
        row_id = row_type.row_id(row)  # type: ignore[attr-defined]
    except Exception:  # row_id() needs a field this row lacks or has of another type
        return ""
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or str(row_id) == "None":
        return ""  # "None": made of a field the row gives as null
    return str(row_id)


def _bad(fallback_id: str, lineno: int, reason: str, text: bytes, row_type: type[msgspec.Struct]) -> BadRow:
    """A bad row that keeps its own id (and its text) when the rest of it can be read."""
    row_id = _lenient_id(text, row_type)
    return BadRow(lineno, row_id, reason, text) if row_id else BadRow(lineno, fallback_id, reason, None)


def iter_ids(path: Path, limit: int, row_type: type[msgspec.Struct], max_bytes: int = 0) -> Iterator[tuple[int, int, str]]:
    """(row index, line, the id its task will have) for every row, bad ones included."""
    label = unit(path)
    for index, lineno, line in iter_lines(path, limit):
        yield index, lineno, parse_row(lineno, line, row_type, max_bytes, label).row_id


def iter_shard(path: Path, limit: int, shard: int, shards: int, row_type: type[msgspec.Struct],
               max_bytes: int = 0, dups: Duplicates | None = None) -> Iterator[GoodRow | BadRow]:
    """Shard ``shard``'s rows, with the run's duplicate ids renamed or skipped."""
    renamed, skipped = (dups.renamed, set(dups.skipped)) if dups else ({}, set())
    label = unit(path)
    for index, lineno, line in iter_lines(path, limit):
        if index % shards != shard or index in skipped:
            continue
        row = parse_row(lineno, line, row_type, max_bytes, label)
        yield dataclasses.replace(row, row_id=renamed[index]) if index in renamed else row
