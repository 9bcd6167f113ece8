"""The table of figures (printed after a run, and the README's block): each section's rows in its slots."""

from __future__ import annotations

from typing import Any

from .section import Row
from .sections import SECTIONS
from .sections.fmt import fmt


def server_rows(r: dict[str, Any]) -> list[Row]:
    """The one figure every section adds to: requests in flight at the simulator."""
    peak = r.get("server_max_in_flight")
    return [("requests in flight at the simulator (max)", fmt(peak, "d") if peak is not None else "n/a", ">= 5000")]


SERVER_SLOT = 50


def table_rows(r: dict[str, Any]) -> list[Row]:
    """(metric, value, target) for every figure of results.json (targets printed, never asserted)."""
    slots = [(SERVER_SLOT, server_rows)] + [slot for s in SECTIONS for slot in s.table]
    rows: list[Row] = []
    for _, fn in sorted(slots, key=lambda slot: slot[0]):
        rows += fn(r)
    return rows


def table(r: dict[str, Any]) -> str:
    rows = table_rows(r)
    w = max(len(a) for a, _, _ in rows)
    v = max(len(b) for _, b, _ in rows)
    lines = [f"{'metric':<{w}}  {'value':<{v}}  target", "-" * (w + v + 12)]
    lines += [f"{a:<{w}}  {b:<{v}}  {c}" for a, b, c in rows]
    return "\n".join(lines)
