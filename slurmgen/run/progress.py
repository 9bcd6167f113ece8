"""Follow a run from its output shards alone: tasks done, failures, tokens.

The driver has no socket on the data path; it reads what origins wrote.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from slurmgen.protocol import Failure, Status, Usage


class _Light(msgspec.Struct):
    status: Status
    reason: str = ""
    usage: dict[str, Usage] = {}


@dataclass
class Counts:
    done: int = 0
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failure_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    ran: int = 0  # records of tasks that ran (not refused as bad input)
    ran_failed: int = 0
    first_failure: str = ""  # the whole reason of the first failed task that ran

    def add(self, rec: _Light) -> None:
        self.done += 1
        setattr(self, rec.status.value, getattr(self, rec.status.value) + 1)
        failure = Failure.of(rec.reason) if rec.status is Status.FAILED else None
        if rec.status is Status.FAILED:
            self.failure_reasons[str(failure or "other")] += 1
        if rec.status is Status.FAILED and failure is not Failure.BAD_INPUT:
            self.first_failure = self.first_failure or rec.reason
            self.ran_failed += 1
        self.ran += failure is not Failure.BAD_INPUT
        for u in rec.usage.values():
            self.prompt_tokens += u.prompt_tokens
            self.completion_tokens += u.completion_tokens

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ResultsTail:
    """Reads only the complete lines appended since the last call (``skip_existing``: and
    only those written after it was made)."""

    directory: Path
    skip_existing: bool = False
    counts: Counts = field(default_factory=Counts)
    _offsets: dict[Path, int] = field(default_factory=dict)
    _decoder: msgspec.json.Decoder = field(default_factory=lambda: msgspec.json.Decoder(_Light))

    def __post_init__(self) -> None:
        if self.skip_existing:
            for path in self.directory.glob("shard-*.jsonl"):
                data = path.read_bytes()
                self._offsets[path] = data.rfind(b"\n") + 1

    def poll(self) -> Counts:
        for path in sorted(self.directory.glob("shard-*.jsonl")):
            self._read(path)
        return self.counts

    def _read(self, path: Path) -> None:
        offset = self._offsets.get(path, 0)
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            if line:
                self.counts.add(self._decoder.decode(line))
        self._offsets[path] = offset + end
