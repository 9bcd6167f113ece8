"""A task's outcome is typed: Status and Failure (slurmgen.protocol). A typo in a status or
a failure class fails loudly where it is written, in config, and in a record read back."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
import pytest

from slurmgen.config.bounds import check_bounds
from slurmgen.config.load import workflow_classes
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError, LLMError, ToolPoolError
from slurmgen.export.read import iter_records
from slurmgen.records import Record
from slurmgen.run.progress import Counts
from slurmgen.runtime.worker import run_role
from slurmgen.workflow import Failure, Orchestrator, RoleContext, Status, Workflow, WorkflowConf, fail, finish


class _Row(msgspec.Struct):
    x: int = 0


def task() -> Orchestrator:
    return Orchestrator(task_id="r:0", row_id="r", trial=0, seed=1, origin="peer-0", next_role="solve",
                        row=msgspec.Raw(b'{"x": 1}'))


def test_a_status_typo_raises_where_it_is_written() -> None:
    with pytest.raises(TypeError, match="Status.OK"):
        finish(task(), "okay", "done")  # type: ignore[arg-type]  # the typo under test
    with pytest.raises(TypeError):
        finish(task(), "ok", "done")  # type: ignore[arg-type]  # a plain string is refused too
    with pytest.raises(TypeError):
        finish(task(), Status.RUNNING, "not an end")


def test_a_failure_needs_a_known_class() -> None:
    with pytest.raises(ValueError, match="fail\\(orch, Failure.X"):
        finish(task(), Status.FAILED, "oops: something")
    orch = task()
    fail(orch, Failure.TOOL_ERROR, "session gone")
    assert (orch.status, orch.reason) == (Status.FAILED, "tool_error: session gone")
    assert Failure.of(orch.reason) is Failure.TOOL_ERROR and Failure.of("oops: x") is None
    assert LLMError("x").kind is Failure.LLM_ERROR and ToolPoolError("x", kind=Failure.TOOL_LOST).kind == "tool_lost"


def test_a_role_writing_a_typo_fails_its_task_instead_of_counting_as_nothing() -> None:
    async def solve(orch: Orchestrator, ctx: object) -> None:
        finish(orch, "okay", "solved")  # type: ignore[arg-type]  # the typo under test

    wf = Workflow(name="t", roles={"solve": solve}, transition=lambda o: None,  # type: ignore[dict-item]
                  metrics=lambda recs: {}, row=_Row, conf=WorkflowConf)
    orch = task()
    ctx = RoleContext(llm=None, conf=WorkflowConf(name="t"), log=logging.getLogger("t"))  # type: ignore[arg-type]  # no LLM
    asyncio.run(run_role(wf, ctx, orch))
    assert orch.status is Status.FAILED and Failure.of(orch.reason) is Failure.INTERNAL
    assert "finish(): status must be" in orch.reason


def test_a_record_with_an_unknown_status_is_refused_when_read_back(tmp_path: Path) -> None:
    good = Record(task_id="a:0", row_id="a", trial=0, status=Status.OK, reason="done")
    line = msgspec.json.encode(good)
    assert b'"status":"ok"' in line  # the format on disk is today's string
    (tmp_path / "shard-0.jsonl").write_bytes(line + b"\n")
    assert [r.status for r in iter_records(tmp_path, None)] == [Status.OK]
    for bad in (b'"okay"', b'"running"'):
        (tmp_path / "shard-0.jsonl").write_bytes(line.replace(b'"ok"', bad) + b"\n")
        with pytest.raises(msgspec.ValidationError, match="status"):
            list(iter_records(tmp_path, None))


def test_failures_are_counted_by_class() -> None:
    counts = Counts()
    for status, reason in ((Status.FAILED, "llm_error: refused"), (Status.FAILED, "bad_input: line 3"),
                           (Status.REJECTED, "too_short"), (Status.OK, "done")):
        counts.add(Record(task_id="a:0", row_id="a", trial=0, status=status, reason=reason))  # type: ignore[arg-type]  # a Record has every field Counts reads
    assert counts.failure_reasons == {"llm_error": 1, "bad_input": 1}
    assert (counts.ok, counts.rejected, counts.failed, counts.ran, counts.ran_failed) == (1, 1, 2, 3, 1)


def test_retry_on_names_only_failure_classes() -> None:
    conf = SlurmgenConf(workflow=workflow_classes()["nr"]())
    conf.run.retry_on = ["llm_error", "timout"]
    with pytest.raises(ConfigError, match="'timout' is no failure class; valid: llm_error"):
        check_bounds(conf)
