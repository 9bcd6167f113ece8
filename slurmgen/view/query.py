"""Filters over the index, evaluated a block of records at a time (memory bounded by the block)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import msgspec
import numpy as np

from slurmgen.errors import ConfigError
from slurmgen.view.fields import STATUS_NAMES, Row, row
from slurmgen.view.index import Index

BLOCK = 1 << 16  # records evaluated at a time
SEARCH_BYTES = 64 << 20  # record bytes a text search reads per request before it returns what it found


class Filter(msgspec.Struct, kw_only=True):
    """What the list shows; every field optional (empty = any)."""

    status: str = ""  # ok | rejected | failed | unreadable
    reason: str = ""  # the workflow's reason, or a failed record's failure class
    role: str = ""  # a role that took part (in the history or the usage)
    pool: str = ""  # an LLM pool that answered
    trial: int | None = None
    metric: str = ""  # a workflow metric (reward, agreement, score, ...), with min / max
    min: float | None = None
    max: float | None = None
    q: str = ""  # text the record's JSON contains (case-insensitive)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filter:
        """From URL query parameters (blank values mean "any")."""
        given = {k: v for k, v in query.items() if k in cls.__struct_fields__ and v != ""}
        try:
            return msgspec.convert(given, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"bad filter: {exc}") from exc


class Page(msgspec.Struct, kw_only=True):
    rows: list[Row]
    total: int | None  # records that match (None while a text search has not read them all)
    next: int | None = None  # a text search: the record to go on from (None = read to the end)
    scanned: int = 0  # a text search: records read so far


def _mask(index: Index, f: Filter, lo: int, hi: int) -> np.ndarray:
    """Which of records [lo, hi) match ``f``'s indexed fields (not its text)."""
    meta, mask = index.meta, np.ones(hi - lo, dtype=bool)
    if f.status:
        code = STATUS_NAMES.index(f.status) if f.status in STATUS_NAMES else -1
        mask &= index.col("status")[lo:hi] == code
    if f.reason:
        code = meta.reasons.index(f.reason) if f.reason in meta.reasons else -1
        mask &= index.col("reason")[lo:hi] == code
    for name, table in (("roles", meta.roles), ("pools", meta.pools)):
        value = f.role if name == "roles" else f.pool
        if value:
            bit = np.uint64(1 << table.index(value)) if value in table else np.uint64(0)
            mask &= (index.col(name)[lo:hi] & bit) != 0
    if f.trial is not None:
        mask &= index.col("trial")[lo:hi] == f.trial
    if f.metric:
        values = index.metric(f.metric)
        if values is None:
            return np.zeros(hi - lo, dtype=bool)
        v = values[lo:hi]
        mask &= ~np.isnan(v)
        if f.min is not None:
            mask &= v >= f.min
        if f.max is not None:
            mask &= v <= f.max
    return mask


def matching(index: Index, f: Filter, start: int = 0) -> Iterator[np.ndarray]:
    """The ordinals of matching records from ``start`` on, a block at a time."""
    for lo in range(start, index.meta.n, BLOCK):
        hi = min(index.meta.n, lo + BLOCK)
        yield lo + np.flatnonzero(_mask(index, f, lo, hi))


def count(index: Index, f: Filter) -> int:
    return sum(len(block) for block in matching(index, f))


def page(index: Index, f: Filter, offset: int = 0, limit: int = 50) -> Page:
    """Rows ``offset`` .. ``offset + limit`` of the matching records (a text search: from record ``offset``)."""
    if f.q:
        return _search(index, f, offset, limit)
    rows: list[Row] = []
    total = 0
    for block in matching(index, f):
        if total + len(block) > offset and len(rows) < limit:
            for n in block[max(0, offset - total):][: limit - len(rows)]:
                rows.append(row(int(n), index.read(int(n))))
        total += len(block)
    return Page(rows=rows, total=total)


def _search(index: Index, f: Filter, start: int, limit: int) -> Page:
    needle = f.q.lower().encode()
    rows: list[Row] = []
    read = scanned = 0
    for block in matching(index, f, start):
        for n in block:
            line = index.read(int(n))
            scanned += 1
            read += len(line)
            if needle in line.lower():
                rows.append(row(int(n), line))
            if len(rows) >= limit or read >= SEARCH_BYTES:
                more = int(n) + 1 < index.meta.n
                return Page(rows=rows, total=None, next=int(n) + 1 if more else None, scanned=scanned)
    return Page(rows=rows, total=None, next=None, scanned=scanned)
