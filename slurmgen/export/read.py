"""Records of a run, streamed: complete lines only, so a live run can be exported too."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from slurmgen.records import Record, read_shard, shard_paths


def iter_records(results: Path, statuses: set[str] | None) -> Iterator[Record]:
    """Every record (of ``statuses``; None = all) in shard order (``records.read_shard``)."""
    for path in shard_paths(results):
        for rec in read_shard(path):
            if statuses is None or rec.status in statuses:
                yield rec
