"""An exception in any background coroutine of a peer, a service supervisor or a tool-pool
member is logged once and handled by its owner: the run still ends with every task once.

SLURMGEN_FAULTS (slurmgen.proc.faults) makes each named path raise once per run.
"""

import json

import pytest

from tests.conftest import read_records, run_slurmgen, slurmgen_processes

PEER_PATHS = {  # point -> the exception it raises, where
    "hop": 20,  # a role hop (per task): the task goes home failed "lost", is issued again
    "home": 15,  # a task coming home (per task): written all the same (here: issued again)
    "free": 10,  # freeing its spilled payloads after the write (per task): nothing lost
    "receiver": 100,  # the peer's inbox loop (own loop): the peer exits 1, is restarted, resumes
    "leases": 2,  # the lease loop (own loop)
    "source": 1,  # the loop issuing tasks from the shard (own loop)
    "heartbeats-peer": 2,  # a peer's registry client heartbeats (own loop)
    "heartbeats-llm": 2,  # an LLM service supervisor's registry client: it exits 1, is restarted
    "registry-tick": 3,  # the registry's expiry loop: it exits 1, is restarted, peers re-register
    "sim-engine": 50,  # a simulator's engine loop: the server stops, its supervisor exits 1, is restarted
}
POOL_PATHS = {"pool-work": 6, "pool-loop": 3, "heartbeats-toolpool": 4}


def faulted_run(monkeypatch, tmp_path, plan: dict[str, int], *overrides: str) -> list:
    fired = tmp_path / "fired"
    fired.mkdir()
    monkeypatch.setenv("SLURMGEN_FAULTS", ",".join(f"{k}:{n}" for k, n in plan.items()))
    monkeypatch.setenv("SLURMGEN_FAULTS_DIR", str(fired))
    run_dir = tmp_path / "run"
    run_slurmgen(f"run.dir={run_dir}", "run.progress=false", "run.lease_renew_s=0.5", "run.heartbeat_s=0.5",
                 *overrides, timeout=400)
    assert sorted(p.stem for p in fired.glob("*.fired")) == sorted(plan)  # every path did raise
    assert slurmgen_processes(run_dir) == []
    logs = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    assert "never retrieved" not in logs
    return read_records(run_dir), logs, run_dir


def test_every_peer_and_supervisor_background_path_fails_once_and_the_run_ends_exactly_once(monkeypatch, tmp_path):
    recs, logs, run_dir = faulted_run(monkeypatch, tmp_path, PEER_PATHS, "workflow=nr", "dataset.limit=300",
                                      "llm.time_scale=50", "run.max_in_flight=32")
    ids = [r.task_id for r in recs]
    assert len(ids) == 300 and len(set(ids)) == 300
    assert "failed" not in {r.status for r in recs}  # each faulted task was issued again and finished
    for kind, point in (("hop", "hop"), ("coming home", "home"), ("coming home", "free")):
        lines = [ln for ln in logs.splitlines() if f" {kind} of peer-" in ln and f"fault at {point} " in ln]
        assert len(lines) == 1 and " task=<urn:uuid:" in lines[0], point  # logged once, with the task id
    for loop in ("receiver", "leases", "source", "heartbeats", "expiry"):  # own loops: the process stopped
        assert f"the {loop} loop of" in logs, loop
    assert "sim engine loop ended" in logs
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_total"] == 300


def test_every_tool_pool_background_path_fails_once_and_the_run_ends_exactly_once(monkeypatch, tmp_path):
    pytest.importorskip("tau2.data_model.tasks", reason="tau2-bench not installed")
    recs, logs, _ = faulted_run(monkeypatch, tmp_path, POOL_PATHS, "workflow=tau2", "workflow.domain=retail",
                                "llm.script=oracle", "dataset.limit=24", "llm.time_scale=100",
                                "toolpool.call_timeout_s=20")
    ids = [r.task_id for r in recs]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert {r.status for r in recs} == {"ok"}
    assert "InjectedFault" in logs and "the stats_loop loop of pool-" in logs
