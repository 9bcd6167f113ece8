"""The output record: one JSON line per task in ``results/shard-*.jsonl``."""

from __future__ import annotations

import msgspec

from slurmgen.protocol import Turn, Usage


class Record(msgspec.Struct, kw_only=True, omit_defaults=True):
    task_id: str
    row_id: str
    trial: int
    status: str  # ok | rejected | failed
    reason: str = ""
    usage: dict[str, Usage] = {}
    metrics: dict[str, float] = {}
    output: msgspec.Raw = msgspec.Raw(b"null")  # the workflow's final state
    history: list[Turn] = []
    seed: int = 0
    attempt: int = 0
    created_at: float = 0.0
    finished_at: float = 0.0
    peer: str = ""  # origin peer that wrote it
    log: str = ""  # for a failed task: the log file and the task=<id> its lines carry


STATUSES = ("ok", "rejected", "failed")
