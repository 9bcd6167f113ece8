"""A request that kills its LLM server (the simulator's --die-on: the process exits with code 0,
as vLLM's API server does after an EngineDeadError) is a named failure, not a loop: the
server's death is logged with its last lines, the supervisor brings up a fresh one, the
same request kills that one too, and the task is written failed as engine_died; the
other tasks finish."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import read_records, run_own_workflow, slurmgen_processes

ECHO = """
from dataclasses import dataclass, field

import msgspec

from slurmgen.workflow import ChatMessage, Sampling, Workflow, WorkflowConf, add_turn


class Row(msgspec.Struct):
    id: str
    text: str

    def row_id(self):
        return self.id


@dataclass
class EchoConf(WorkflowConf):
    name: str = "echo"


async def ask(task, ctx):
    reply = await ctx.llm.chat([ChatMessage(role="user", content=task.row.text)], sampling=Sampling(max_tokens=8),
                               seed=task.seed)
    add_turn(task, "ask", reply)


def transition(task):
    return None if task.history else "ask"


def metrics(records):
    return {}


WORKFLOW = Workflow(name="echo", conf=EchoConf, roles={"ask": ask}, transition=transition, metrics=metrics, row=Row)
"""


def test_a_request_that_kills_its_server_twice_fails_as_engine_died(tmp_path: Path):
    rows = [{"id": f"r{i}", "text": f"question {i}" + (" POISON" if i == 2 else "")} for i in range(5)]
    t0 = time.monotonic()
    proc = run_own_workflow(tmp_path, "echo=echo:WORKFLOW", ECHO, rows, "llm.extra_args=[--die-on,POISON]",
                            "llm.time_scale=300", "run.fail_fast_tasks=0", "run.max_failure_rate=0.5",
                            "run.stall_s=60", "run.stall_stop_s=120", timeout=240)
    took = time.monotonic() - t0
    run_dir = tmp_path / "run"
    assert proc.returncode == 0, proc.stderr
    recs = {r.row_id: r for r in read_records(run_dir)}
    assert sorted(recs) == [f"r{i}" for i in range(5)]
    poisoned = recs.pop("r2")
    assert poisoned.status == "failed" and poisoned.reason.startswith("engine_died: "), poisoned.reason
    assert "died under this task's request 2 times" in poisoned.reason
    assert poisoned.attempt == 1  # tried once more on a fresh server, not again after that
    assert all(r.status == "ok" for r in recs.values())

    supervisor = (run_dir / "logs" / "llm-0.supervisor.log").read_text()
    deaths = supervisor.count("exited on its own with code 0")
    # two tries of the task (run.max_engine_deaths=2); a try's own retries may reach the fresh server too
    assert 2 <= deaths <= 4, supervisor
    assert "EngineDeadError: the engine died on a request containing 'POISON'" in supervisor  # its last lines
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_failed"] == 1 and summary["tasks_ok"] == 4
    assert slurmgen_processes(run_dir) == []
    print(f"poison request: 5 tasks, {deaths} server deaths, finished in {took:.1f} s")
