"""Reading the input: whole-file checks before a run, and one shard's rows for a peer.

Row *k* (0-based, counting non-empty lines) belongs to shard ``k % shards``. A line
that is not JSON, or a row that does not match the workflow's row type, is yielded as
a ``BadRow`` (it becomes a failed record naming the line and the field); the run goes on.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import msgspec

from slurmgen.errors import DatasetError
from slurmgen.input import duplicates, formats, rowid
from slurmgen.input.duplicates import Duplicates


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
    if path.startswith(formats.HUB):
        formats.load_hub(path)
        return Path(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"dataset.path={path!r} does not exist; give one of: {formats.ACCEPTED}")
    if not os.access(p, os.R_OK):
        raise DatasetError(f"dataset.path={path!r} is not readable by this user")
    formats.detect(p)
    return p.resolve()


def iter_lines(path: Path, limit: int) -> Iterator[tuple[int, int, bytes]]:
    """(row index, 1-based line or row number, the row as JSON) for every row, up to ``limit``."""
    return formats.read(path, formats.detect(path), limit)


def unit(path: Path) -> str:
    """What a position counts in this input's messages: lines of JSONL, rows of the others."""
    return "line" if formats.detect(path).startswith("jsonl") else "row"


def count_rows(path: Path, limit: int) -> int:
    return sum(1 for _ in iter_lines(path, limit))


def parse_row(lineno: int, line: bytes, row_type: type[msgspec.Struct], max_bytes: int = 0,
              unit: str = "line", columns: frozenset[str] | None = None) -> GoodRow | BadRow:
    """One row, or why it is bad; never raises (any exception here would stop a shard).
    ``columns``: the fields the run's id scan read (``Duplicates.id_columns``), so that a bad
    row's id is the one the scan saw."""
    where = f"bad_input: {unit} {lineno}"
    if max_bytes and len(line) > max_bytes:
        return _bad(lineno, f"{where}: {len(line)} bytes, over dataset.max_row_bytes={max_bytes}", line, row_type,
                    unit, columns, keep=False)
    try:  # the whole line: msgspec skips unknown fields without checking their bytes
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = line.decode("utf-8", errors="replace").encode()
        return _bad(lineno, f"{where}: not valid UTF-8 at byte {exc.start} ({exc.reason})", text, row_type, unit,
                    columns)
    try:
        row = msgspec.json.decode(line, type=row_type)
    except msgspec.ValidationError as exc:  # a wrong type or a missing field: keep its id if it has one
        return _bad(lineno, f"{where}: {exc}", line, row_type, unit, columns)
    except msgspec.DecodeError as exc:
        return BadRow(lineno, f"{unit}-{lineno}", f"{where}: not valid JSON ({exc})")
    try:
        row_id = rowid.typed_id(row.row_id())  # type: ignore[attr-defined]  # row_id() is the workflow's row type's method
    except Exception as exc:  # noqa: BLE001 - the workflow's row_id() failed on this row
        return BadRow(lineno, f"{unit}-{lineno}", f"{where}: row_id() failed: {type(exc).__name__}: {exc}", line)
    if not row_id:
        return BadRow(lineno, f"{unit}-{lineno}", f"{where}: empty row id", line)
    return GoodRow(lineno, row_id, line)


def _bad(lineno: int, reason: str, text: bytes, row_type: type[msgspec.Struct], unit: str,
         columns: frozenset[str] | None, keep: bool = True) -> BadRow:
    """A bad row that keeps its own id (and, unless ``keep`` is off, its text) when it has one."""
    try:
        row_id = rowid.own_id(text, row_type, columns)
    except rowid.NeedColumn:  # row_id() reads a field the scan never needed: not this run's scan
        row_id = ""
    if not row_id:
        return BadRow(lineno, f"{unit}-{lineno}", reason, None)
    return BadRow(lineno, row_id, reason, text if keep else None)


def id_columns(path: Path) -> frozenset[str] | None:
    """Where the id scan starts: no column of a columnar input (it adds those row_id() uses),
    or None for JSONL (each line is parsed whole: there are no columns to leave out)."""
    return None if formats.detect(path).startswith("jsonl") else frozenset()


def iter_ids(path: Path, limit: int, row_type: type[msgspec.Struct], max_bytes: int = 0,
             columns: frozenset[str] | None = None) -> Iterator[tuple[int, int, str]]:
    """(row index, line, the id its task will have) for every row, bad ones included. With
    ``columns``, only those are read; raises ``rowid.NeedColumn`` when row_id() wants another."""
    label = unit(path)
    if columns is None:
        for index, lineno, line in iter_lines(path, limit):
            yield index, lineno, parse_row(lineno, line, row_type, max_bytes, label).row_id
        return
    names = _encode_names(row_type, columns)
    for index, lineno, line in formats.read(path, formats.detect(path), limit, columns=names):
        yield index, lineno, rowid.own_id(line, row_type, columns) or f"{label}-{lineno}"


def _encode_names(row_type: type[msgspec.Struct], columns: frozenset[str]) -> list[str]:
    return sorted(f.encode_name for f in msgspec.structs.fields(row_type) if f.name in columns)


def find_duplicates(path: Path, limit: int, row_type: type[msgspec.Struct], max_bytes: int, on_duplicate: str,
                    source: str) -> tuple[int, Duplicates]:
    """The number of rows and what to do about repeated ids, reading as few columns as the ids need."""
    columns = id_columns(path)
    while True:
        def ids(columns: frozenset[str] | None = columns) -> Iterator[tuple[int, int, str]]:
            return iter_ids(path, limit, row_type, max_bytes, columns)
        try:
            rows, dups = duplicates.scan(ids(), ids(), on_duplicate, source)
        except rowid.NeedColumn as need:
            assert columns is not None and need.name not in columns, need.name
            columns = columns | {need.name}
            continue
        dups.id_columns = sorted(columns) if columns is not None else None
        return rows, dups


def iter_shard(path: Path, limit: int, shard: int, shards: int, row_type: type[msgspec.Struct],
               max_bytes: int = 0, dups: Duplicates | None = None) -> Iterator[GoodRow | BadRow]:
    """Shard ``shard``'s rows, with the run's duplicate ids renamed or skipped."""
    dups = dups or Duplicates()
    renamed, skipped = dups.renamed, set(dups.skipped)
    columns = frozenset(dups.id_columns) if dups.id_columns is not None else None
    label = unit(path)
    for index, lineno, line in formats.read(path, formats.detect(path), limit, shard=shard, shards=shards):
        if index in skipped:
            continue
        row = parse_row(lineno, line, row_type, max_bytes, label, columns)
        yield dataclasses.replace(row, row_id=renamed[index]) if index in renamed else row
