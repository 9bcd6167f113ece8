"""Records of a run, streamed: complete lines only, so a live run can be exported too."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import msgspec

from slurmgen.records import Record


def iter_records(results: Path, statuses: set[str] | None) -> Iterator[Record]:
    """Every record (of ``statuses``; None = all) in shard order, reading each file in blocks."""
    decoder = msgspec.json.Decoder(Record)
    for path in sorted(results.glob("shard-*.jsonl")):
        with open(path, "rb") as f:
            tail = b""
            while block := f.read(1 << 20):
                lines = (tail + block).split(b"\n")
                tail = lines.pop()  # no newline yet: a live run may be writing it
                for line in lines:
                    if line.strip():
                        rec = decoder.decode(line)
                        if statuses is None or rec.status in statuses:
                            yield rec
