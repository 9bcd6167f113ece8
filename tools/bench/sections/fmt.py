"""How a figure reads in the table."""

from __future__ import annotations

from typing import Any


def fmt(v: Any, spec: str = ".3g") -> str:
    """``n/a`` for a missing figure; ``.3g`` numbers of 1000 and more in full."""
    if v is None:
        return "n/a"
    if isinstance(v, (int, float)) and spec == ".3g" and abs(v) >= 1000:
        return f"{v:.0f}"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)
