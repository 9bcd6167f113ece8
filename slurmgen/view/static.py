"""``slurmgen view RUN --static OUT``: a copy of the viewer a user can take to a laptop.

Bounded: the first ``limit`` records that match ``where`` (a filter in URL-query form,
e.g. ``status=failed``), in the index's order, written whole into ``OUT/data.js``
beside ``OUT/index.html`` (the same page; it filters and searches those records itself).
Opened from the file system (``file://``): no server.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from slurmgen.view.fields import Row, row
from slurmgen.view.index import Index
from slurmgen.view.query import Filter, matching
from slurmgen.view.server import meta_of, page_html


class _Seed(msgspec.Struct):
    seed: int = 0


MAIN_SCRIPT = b'<script>\n"use strict";'


def write(index: Index, out: Path, where: Filter, limit: int) -> tuple[int, int]:
    """Write the copy; return (records copied, records that matched)."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    records: dict[int, msgspec.Raw] = {}
    seeds: dict[int, str] = {}
    matched = 0
    for block in matching(index, where):
        for n in block[: max(0, limit - len(rows))]:
            line = index.read(int(n))
            rows.append(row(int(n), line))
            records[int(n)] = msgspec.Raw(line)
            seeds[int(n)] = str(msgspec.json.decode(line, type=_Seed).seed)  # a 64-bit integer: JS would round it
        matched += len(block)
    meta = meta_of(index)
    note = f"the first {len(rows)} of {matched} records" + (f" matching {_describe(where)}" if _describe(where) else "")
    payload = msgspec.json.encode({"meta": meta, "rows": rows, "records": records, "seeds": seeds,
                                   "note": note})
    (out / "data.js").write_bytes(b"window.SLURMGEN_STATIC = " + payload + b";\n")
    page = page_html().replace(MAIN_SCRIPT, b'<script src="data.js"></script>\n' + MAIN_SCRIPT, 1)
    (out / "index.html").write_bytes(page)
    return len(rows), matched


def _describe(f: Filter) -> str:
    given = msgspec.structs.asdict(f)
    return " ".join(f"{k}={v}" for k, v in given.items() if v not in ("", None))
