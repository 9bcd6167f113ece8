"""One reader of a results shard, one torn-line policy: status, summary, export and regrade
see the same records of a shard whose last line is still being written."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from slurmgen import records
from slurmgen.export.read import iter_records
from slurmgen.protocol import Status
from slurmgen.records import Record, read_shard, shard_paths
from slurmgen.run.status import collect
from slurmgen.run.summary import read_records
from slurmgen.rundir import RunDir


def line(task_id: str, status: Status = Status.OK, content: str = "") -> bytes:
    rec = Record(task_id=task_id, row_id=task_id.partition(":")[0], trial=0, status=status,
                 reason="done" if status is Status.OK else "llm_error: x", output=msgspec.Raw(b'{"x": 1}'),
                 metrics={"score": 1.0}, finished_at=1.0 + len(content))
    return msgspec.json.encode(rec) + b"\n"


def test_a_torn_last_line_and_blank_lines_are_left_out(tmp_path: Path) -> None:
    shard = tmp_path / "shard-00000.jsonl"
    shard.write_bytes(line("a:0") + b"\n  \n" + line("b:0", Status.FAILED) + line("c:0")[:40])
    assert [(r.task_id, r.status) for r in read_shard(shard)] == [("a:0", Status.OK), ("b:0", Status.FAILED)]
    with open(shard, "ab") as f:  # the writer finishes its line
        f.write(line("c:0")[40:])
    assert [r.task_id for r in read_shard(shard)] == ["a:0", "b:0", "c:0"]


def test_a_record_longer_than_a_block_reads_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "READ_BLOCK", 64)
    shard = tmp_path / "shard-00000.jsonl"
    shard.write_bytes(line("a:0", content="x" * 500) + line("b:0"))
    assert [r.task_id for r in read_shard(shard)] == ["a:0", "b:0"]


def test_a_complete_line_that_is_no_record_raises(tmp_path: Path) -> None:
    shard = tmp_path / "shard-00000.jsonl"
    shard.write_bytes(line("a:0") + b'{"task_id": "b:0"}\n')
    with pytest.raises(msgspec.ValidationError, match="row_id"):
        list(read_shard(shard))


def test_status_summary_and_export_read_the_same_records_of_a_live_run(tmp_path: Path) -> None:
    run = RunDir(tmp_path).make()
    run.shard(1).write_bytes(line("c:0") + line("d:0", Status.FAILED)[:-1])  # d's newline not written yet
    run.shard(0).write_bytes(line("a:0") + line("b:0", Status.FAILED))
    assert shard_paths(run.results) == [run.shard(0), run.shard(1)]
    assert [r.task_id for r in read_records(run.results)] == ["a:0", "b:0", "c:0"]
    assert [r.task_id for r in iter_records(run.results, None)] == ["a:0", "b:0", "c:0"]
    assert [r.task_id for r in iter_records(run.results, {"failed"})] == ["b:0"]
    st = collect(run, 2.0)
    assert st.done == 3 and st.by_status == {"ok": 2, "failed": 1} and st.failed_reasons == {"llm_error": 1}
