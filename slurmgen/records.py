"""The output record: one JSON line per task in ``results/shard-*.jsonl``.

Every field is always written (``null``, ``{}`` or ``[]`` where empty), so that every
record of every workflow has the same columns, and ``seed`` stays an integer in pandas.
The JSON Schema of this Struct ships as ``slurmgen/schema/record.schema.json``
(``python -m slurmgen.records`` prints it; a test keeps the two equal).

``read_shard`` is the one reader of a shard file, for a live run and a finished one alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from slurmgen.protocol import TERMINAL, Failure, Status, Turn, Usage

# A row longer than this is not copied into its record's ``input``; ``line`` still points at it.
INPUT_INLINE_MAX = 1 << 20
READ_BLOCK = 1 << 20  # bytes read at a time by read_shard


class Record(msgspec.Struct, kw_only=True):
    task_id: str  # "<row_id>:<trial>", unique in the run
    row_id: str  # the row's own id (or "line-<n>" for a row whose id could not be read)
    trial: int
    status: Status  # ok | rejected | failed (never running)
    reason: str = ""  # why: the workflow's reason, or "<failure class>: <message>"
    usage: dict[str, Usage] = {}  # per role: prompt_tokens, completion_tokens, requests
    metrics: dict[str, float] = {}  # numbers a role recorded for this task
    output: msgspec.Raw = msgspec.Raw(b"null")  # the workflow's final state (null if none)
    history: list[Turn] = []  # the turns, oldest first
    input: msgspec.Raw = msgspec.Raw(b"null")  # the row as read (JSON); null if unreadable or over 1 MiB
    line: int = 0  # where the row is in the input: 1-based line (JSONL) or row number
    seed: int = 0  # the task's seed (from run.seed and the task id)
    attempt: int = 0  # which attempt wrote it (0 = the first)
    created_at: float = 0.0  # when the attempt that finished was issued (Unix time)
    finished_at: float = 0.0
    peer: str = ""  # origin peer that wrote it
    log: str = ""  # for a failed task: the log file and the task=<id> its lines carry

    def __post_init__(self) -> None:  # also checks each record read back
        if self.status is Status.RUNNING:
            raise ValueError(f"record {self.task_id}: status 'running' is not a final status")

    @property
    def failure(self) -> Failure | None:
        """The class of a failed record (None for ok / rejected)."""
        return Failure.of(self.reason) if self.status is Status.FAILED else None



def shard_paths(results: Path) -> list[Path]:
    """The shard files of a results directory (``RUN/results``), in shard order."""
    return sorted(results.glob("shard-*.jsonl"))


def read_shard(path: Path) -> Iterator[Record]:
    """Every record of one shard file, in the order written, read a block at a time.

    Only a line that ends with a newline is a record: a last line without one is left out
    (a live run may be writing it; a peer killed mid-write has its shard's torn line cut when
    the shard is opened again, ``runtime.ledger``). Blank lines are skipped. A complete
    line that is no record raises (``msgspec.DecodeError``, ``msgspec.ValidationError``).
    """
    decoder = msgspec.json.Decoder(Record)
    with open(path, "rb") as f:
        tail = b""
        while block := f.read(READ_BLOCK):
            lines = (tail + block).split(b"\n")
            tail = lines.pop()  # no newline yet
            for line in lines:
                if line.strip():
                    yield decoder.decode(line)


def reason_class(status: Status | str, reason: str) -> str:
    """A failed task's reason is "<class>: <message>" (URLs, numbers, row lines): its Failure class
    ("other" if none); a workflow's own reason (ok, rejected) is a class already."""
    if status == Status.FAILED:
        return str(Failure.of(reason) or "other")
    return reason or "(none)"


def input_of(raw: bytes | None) -> msgspec.Raw:
    """What a record keeps of its row."""
    return msgspec.Raw(raw) if raw is not None and len(raw) <= INPUT_INLINE_MAX else msgspec.Raw(b"null")


def schema() -> dict:
    """The JSON Schema of a written record: every field required (all are always written);
    ``output`` and ``input`` are any JSON (the workflow's state, the user's row)."""
    out = msgspec.json.schema(_as_written(Record))
    record = out["$defs"]["Record"]
    record["required"] = [f.name for f in msgspec.structs.fields(Record)]
    record["additionalProperties"] = False
    return out


def _as_written(cls: type) -> type:
    """``cls`` with its (and its lists' Structs') ``msgspec.Raw`` fields typed as any JSON."""
    fields = []
    for f in msgspec.structs.fields(cls):
        t, default = f.type, f.default
        if t is msgspec.Raw:
            t, default = Any, None
        elif t is Status:  # a record is never "running"
            t = Literal[tuple(s.value for s in TERMINAL)]
        elif getattr(t, "__origin__", None) is list and _has_raw(t.__args__[0]):
            t = list[_as_written(t.__args__[0])]  # type: ignore[misc]  # a list type built at run time
        if default is msgspec.NODEFAULT and f.default_factory is not msgspec.NODEFAULT:
            default = f.default_factory()
        fields.append((f.name, t) if default is msgspec.NODEFAULT else (f.name, t, default))
    return msgspec.defstruct(cls.__name__, fields, kw_only=True, module=__name__)


def _has_raw(t: object) -> bool:
    return isinstance(t, type) and issubclass(t, msgspec.Struct) and any(
        f.type is msgspec.Raw for f in msgspec.structs.fields(t))


if __name__ == "__main__":
    print(msgspec.json.format(msgspec.json.encode(schema())).decode())
