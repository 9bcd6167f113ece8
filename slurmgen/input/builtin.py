"""Helpers for workflows' built-in datasets: generated once into the user's cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import msgspec

from slurmgen.rundir import write_atomic


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/slurmgen``, by default ``~/.cache/slurmgen``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "slurmgen"


def write_jsonl_atomically(path: Path, rows: Iterable[Any]) -> None:
    """One JSON line per row; readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = msgspec.json.Encoder()
    write_atomic(path, b"".join(encoder.encode(row) + b"\n" for row in rows))


def cached_jsonl(name: str, make: Callable[[], Iterable[Any]]) -> str:
    """Path of ``cache_dir()/name``, written from ``make()`` the first time."""
    path = cache_dir() / name
    if not path.exists():
        write_jsonl_atomically(path, make())
    return str(path)
