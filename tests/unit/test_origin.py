"""The origin: each task written once; retryable failures issued again, or left for the
resume when they happen while the peer stops (servers going away are no reason to fail)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import msgspec
import pytest

from slurmgen.config.types import RunConf, SpillConf
from slurmgen.errors import DiskFull
from slurmgen.input.dataset import GoodRow
from slurmgen.protocol import Orchestrator, Turn
from slurmgen.records import read_shard
from slurmgen.registry.membership import MemberView
from slurmgen.run.progress import ResultsTail
from slurmgen.runtime.blobs import BlobService
from slurmgen.runtime.ledger import Ledger, repair_and_read
from slurmgen.runtime.origin import Origin, OriginPolicy
from slurmgen.transport import codec
from slurmgen.workflow import Failure, Status, Workflow, WorkflowConf, finish


class _Row(msgspec.Struct):
    x: int = 0


POLICY = OriginPolicy(trials=1, max_in_flight=8, run_seed=0, lease_s=60, max_attempts=3,
                      retry_on=(Failure.LLM_ERROR, Failure.TIMEOUT))


def origin(tmp_path: Path, policy: OriginPolicy = POLICY,
           shard: str = "shard.jsonl") -> tuple[Origin, list[Orchestrator]]:
    sent: list[Orchestrator] = []
    wf = Workflow(name="t", roles={}, transition=lambda t: "solve" if t.orch.step == 0 else None,
                  metrics=lambda recs: {}, row=_Row, conf=WorkflowConf)
    return Origin("peer-0", Ledger(tmp_path / shard), wf, policy, sent.append), sent


def issue(o: Origin, n: int) -> None:
    rows = [GoodRow(lineno=i + 1, row_id=f"r{i}", raw=b'{"x": 1}') for i in range(n)]
    asyncio.run(o.issue_all(rows))


def fail(orch: Orchestrator, reason: str) -> Orchestrator:
    finish(orch, Status.FAILED, reason)
    return orch


def test_a_task_is_written_once_and_a_late_duplicate_dropped(tmp_path: Path) -> None:
    o, sent = origin(tmp_path)
    issue(o, 2)
    first = sent[0]
    finish(first, Status.OK, "done")
    o.complete(first)
    o.complete(first)
    assert o.written == 1 and o.duplicates == 1 and list(o.leases) == ["r1:0"]
    o.ledger.close()
    assert repair_and_read(tmp_path / "shard.jsonl") == {"r0:0"}


def test_a_retryable_failure_is_issued_again_until_attempts_run_out(tmp_path: Path) -> None:
    o, sent = origin(tmp_path)
    issue(o, 1)
    for attempt in range(POLICY.max_attempts):
        assert sent[-1].attempt == attempt
        o.complete(fail(sent[-1], "llm_error: connection refused"))
    assert o.retried == 2 and o.written == 1 and not o.leases


def test_rate_limited_attempts_reach_the_driver_only_once_the_tasks_attempts_are_out(tmp_path: Path) -> None:
    """rate_limited is retried by default; the driver's early stop counts records, and an attempt
    issued again writes none: only the task's last attempt counts toward max_failure_rate / fail_fast."""
    policy = dataclasses.replace(POLICY, retry_on=tuple(map(Failure, RunConf().retry_on)))
    o, sent = origin(tmp_path, policy, shard="shard-0.jsonl")
    tail = ResultsTail(tmp_path)
    issue(o, 1)
    reason = "rate_limited: LLM request failed after 5 attempts (http://api: HTTP 429: Rate limit reached)"
    for _ in range(policy.max_attempts - 1):
        o.complete(fail(sent[-1], reason))
        assert tail.poll().done == 0 and o.leases
    o.complete(fail(sent[-1], reason))
    counts = tail.poll()
    assert (counts.done, counts.failed, counts.ran_failed) == (1, 1, 1)
    assert counts.failure_reasons == {"rate_limited": 1} and o.retried == policy.max_attempts - 1


def test_while_stopping_a_retryable_failure_is_left_for_the_resume_not_written(tmp_path: Path) -> None:
    o, sent = origin(tmp_path)
    issue(o, 3)
    assert o.exhausted
    o.stop_issuing()
    o.complete(fail(sent[0], "llm_error: all replicas refused"))
    o.complete(fail(sent[1], "internal: KeyError: 'q'"))  # a real failure is still a record
    assert o.left == 1 and o.written == 1 and o.retried == 0 and len(sent) == 3
    assert list(o.leases) == ["r2:0"]
    finish(sent[2], Status.OK, "done")
    o.complete(sent[2])
    assert not o.leases and not o.finished, "the shard is not done: r0:0 has no record"
    o.ledger.close()
    assert repair_and_read(tmp_path / "shard.jsonl") == {"r1:0", "r2:0"}, "r0:0 is issued again by the resume"


def test_an_older_attempt_failing_late_does_not_fail_or_reissue_the_newer_one(tmp_path: Path) -> None:
    o, sent = origin(tmp_path)
    issue(o, 1)
    old = sent[0]
    o.leases["r0:0"].deadline = 0  # its peer went silent: the lease runs out
    assert o.expire() == ["r0:0"] and sent[-1].attempt == 1
    o.complete(fail(old, "tool_error: session superseded"))  # the old attempt comes back after all
    assert o.duplicates == 1 and o.retried == 0 and len(sent) == 2 and o.written == 0
    finish(sent[-1], Status.OK, "done")
    o.complete(sent[-1])
    assert o.written == 1 and not o.leases


def test_issuing_many_free_slots_lets_other_coroutines_run(tmp_path: Path) -> None:
    """Tens of thousands of free slots at start: issuing yields every ISSUE_BATCH tasks, so that the peer's
    heartbeats and replies are not held up until the last task is issued (the registry would expire it)."""
    from slurmgen.runtime.origin import ISSUE_BATCH

    n = 4 * ISSUE_BATCH
    o, sent = origin(tmp_path, dataclasses.replace(POLICY, max_in_flight=n))
    seen: list[int] = []

    async def other() -> None:
        while len(sent) < n:
            seen.append(len(sent))
            await asyncio.sleep(0)

    async def go() -> None:
        rows = [GoodRow(lineno=i + 1, row_id=f"r{i}", raw=b'{"x": 1}') for i in range(n)]
        await asyncio.gather(o.issue_all(rows), other())

    asyncio.run(go())
    assert len(sent) == n
    assert any(0 < k < n for k in seen), seen[:5]
    o.ledger.close()


def _spilled_home(tmp_path: Path) -> tuple[Origin, Orchestrator, BlobService, list[object], list[int]]:
    """An origin with a real spill layer; its one task finished with a long reply, spilled and stripped."""
    spill = BlobService(SpillConf(dir=str(tmp_path / "spill"), max_bytes=1 << 22), tmp_path, "node-0",
                        MemberView(grace_s=5), lambda peer, msg: True)
    released: list[object] = []
    settled: list[int] = []
    o, sent = origin(tmp_path)
    o.spill, o.release, o.settled = spill, released.append, lambda: settled.append(1)
    issue(o, 1)
    orch = sent[0]
    orch.history = [Turn(role="solve", content="a" * 3000)]
    finish(orch, Status.OK, "done")
    spill.spill(orch)
    spill.strip(orch)
    return o, msgspec.json.decode(codec.encode(orch), type=Orchestrator), spill, released, settled


def test_coming_home_fills_the_spilled_parts_writes_the_record_then_frees_them(tmp_path: Path) -> None:
    o, back, spill, released, settled = _spilled_home(tmp_path)
    ref = back.history[0].content_ref
    assert ref is not None and back.history[0].content == ""  # as it arrives: the reply is on node-0's store
    asyncio.run(o.come_home(back))
    assert o.written == 1 and not o.leases and released == [back] and settled == [1]
    assert spill.store.get_many([ref.key.encode()]) == [None], "freed once the record is written"
    o.ledger.close()
    [rec] = read_shard(tmp_path / "shard.jsonl")
    assert rec.history[0].content == "a" * 3000 and rec.history[0].content_ref is None
    spill.close()


def test_a_homecoming_that_fails_writes_its_task_failed_lost_and_a_full_disk_stops_the_peer(tmp_path: Path) -> None:
    o, back, spill, _, settled = _spilled_home(tmp_path)
    with pytest.raises(DiskFull):
        o.home_failed(back, DiskFull("/x: no space left"))
    assert o.leases and not settled, "a full disk: nothing written, the resume writes it"
    o.home_failed(back, RuntimeError("boom"))
    assert o.written == 1 and settled == [1] and back.history[0].content_ref is None
    o.ledger.close()
    [rec] = read_shard(tmp_path / "shard.jsonl")
    assert rec.failure is Failure.LOST and rec.reason.endswith("coming home on peer-0 failed: RuntimeError: boom")
    spill.close()
