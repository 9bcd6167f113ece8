"""The driver's exit code tells a pipeline whether the run is usable (slurmgen.exitcodes)."""

import json
import re
import subprocess
import sys

from slurmgen.exitcodes import Exit
from tests.conftest import read_records, run_own_workflow, slurmgen_processes

# A workflow with a bug in its role: every task fails with the same exception.
BROKEN = """
from dataclasses import dataclass, field

import msgspec

from slurmgen.workflow import ChatMessage, Sampling, Workflow, WorkflowConf, add_turn


class Row(msgspec.Struct):
    id: str

    def row_id(self):
        return self.id


@dataclass
class BrokenConf(WorkflowConf):
    name: str = "broken"
    bad_ids: list[str] = field(default_factory=list)  # only these fail; empty = every row fails


async def work(task, ctx):
    reply = await ctx.llm.chat([ChatMessage(role="user", content="hi")], sampling=Sampling(max_tokens=8))
    add_turn(task, "work", reply)
    if not ctx.conf.bad_ids or task.row.id in ctx.conf.bad_ids:
        raise ValueError(f"no critic configured for {task.row.id}")


def transition(task):
    return "work" if not task.history else None


def metrics(records):
    return {}


WORKFLOW = Workflow(name="broken", conf=BrokenConf, roles={"work": work}, transition=transition, metrics=metrics,
                    row=Row)
"""


def run_broken(tmp_path, rows: int, *overrides: str) -> subprocess.CompletedProcess[str]:
    return run_own_workflow(tmp_path, "broken=broken:WORKFLOW", BROKEN, [{"id": f"r{i:03d}"} for i in range(rows)],
                            "llm.replicas=1", "run.max_in_flight=4", *overrides)


def test_a_role_bug_stops_the_run_early_with_its_message(tmp_path):
    proc = run_broken(tmp_path, 2000, "llm.time_scale=2")
    assert proc.returncode == Exit.EARLY_STOP, proc.stderr
    assert re.search(r"the first \d+ tasks all failed \(run.fail_fast_tasks=10\)", proc.stderr)
    assert "internal: ValueError: no critic configured for r0" in proc.stderr
    assert slurmgen_processes(tmp_path / "run") == []
    assert 10 <= len(read_records(tmp_path / "run")) < 2000


def test_a_small_run_where_every_task_fails_is_not_a_success(tmp_path):
    proc = run_broken(tmp_path, 20, "run.fail_fast_tasks=0")  # min_tasks_for_rate (50) > the run's 20 tasks
    assert proc.returncode == Exit.FAILURE_RATE, proc.stderr
    assert "20 of 20 tasks failed" in proc.stderr and "first reason: internal: ValueError: no critic" in proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["tasks_failed"] == summary["tasks_total"] == 20


def test_a_small_run_of_a_broken_role_exits_four_with_its_message(tmp_path):
    """All 20 tasks fail before the driver looks: still the fail-fast exit and the exception's message."""
    proc = run_broken(tmp_path, 20)
    assert proc.returncode == Exit.EARLY_STOP, proc.stderr
    assert "tasks all failed (run.fail_fast_tasks=10)" in proc.stderr
    assert "internal: ValueError: no critic configured for r0" in proc.stderr


def test_failures_under_the_rate_exit_zero_and_over_it_five(tmp_path):
    bad = "workflow.bad_ids=[" + ",".join(f"r{i:03d}" for i in range(0, 30, 3)) + "]"  # 10 of 30 fail
    for sub in ("under", "over"):
        (tmp_path / sub).mkdir()
    ok = run_broken(tmp_path / "under", 30, bad, "run.fail_fast_tasks=0")
    assert ok.returncode == Exit.OK, ok.stderr
    over = run_broken(tmp_path / "over", 30, bad, "run.fail_fast_tasks=0", "run.max_failure_rate=0.2")
    assert over.returncode == Exit.FAILURE_RATE, over.stderr
    assert "10 of 30 tasks failed, over run.max_failure_rate=0.2" in over.stderr


def test_an_empty_dataset_is_refused(tmp_path):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n\n")
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "workflow=nr", f"dataset.path={data}",
                           f"run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == Exit.REFUSED, proc.stderr
    assert "has no rows" in proc.stderr
