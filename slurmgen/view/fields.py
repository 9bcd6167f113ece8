"""What the viewer reads of a record: the fields it filters on and the line a list shows.

A record is decoded into these small Structs only (msgspec skips the rest), so indexing a
million records never builds their histories.
"""

from __future__ import annotations

import msgspec

from slurmgen.records import reason_class

STATUS_CODES = {"ok": 0, "rejected": 1, "failed": 2}
STATUS_NAMES = ("ok", "rejected", "failed", "unreadable")
UNREADABLE = 3


class _Use(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    pool: str = ""


class _Step(msgspec.Struct):
    role: str = ""
    pool: str = ""


class Fields(msgspec.Struct):
    """The filterable fields of one record."""

    task_id: str = ""
    trial: int = 0
    status: str = ""
    reason: str = ""
    usage: dict[str, _Use] = {}
    metrics: dict[str, float] = {}
    history: list[_Step] = []

    @property
    def reason_class(self) -> str:
        """The workflow's reason, or the failure class of a failed record ("<class>: <message>")."""
        return reason_class(self.status, self.reason)

    @property
    def roles(self) -> list[str]:
        return sorted({s.role for s in self.history if s.role} | set(self.usage))

    @property
    def pools(self) -> list[str]:
        return sorted({s.pool for s in self.history if s.pool} | {u.pool for u in self.usage.values() if u.pool})

    @property
    def tokens(self) -> int:
        return sum(u.prompt_tokens + u.completion_tokens for u in self.usage.values())


class Row(msgspec.Struct, kw_only=True):
    """One line of the list (what the page shows before a record is opened)."""

    n: int  # the record's ordinal in the index
    task_id: str
    status: str
    reason: str
    trial: int
    roles: list[str]
    pools: list[str]
    metrics: dict[str, float]
    tokens: int
    turns: int


DECODER = msgspec.json.Decoder(Fields)


def decode(line: bytes | memoryview) -> Fields | None:
    """The fields of one record line; None if the line is not a record."""
    try:
        return DECODER.decode(line)
    except msgspec.DecodeError:
        return None


def row(n: int, line: bytes | memoryview) -> Row:
    f = decode(line)
    if f is None:
        return Row(n=n, task_id=f"(unreadable line, {len(line)} bytes)", status="unreadable", reason="", trial=0,
                   roles=[], pools=[], metrics={}, tokens=0, turns=0)
    return Row(n=n, task_id=f.task_id, status=f.status, reason=f.reason, trial=f.trial, roles=f.roles,
               pools=f.pools, metrics=f.metrics, tokens=f.tokens, turns=len(f.history))
