"""A real multi-process local run: registry, simulator replicas and peers over real sockets."""

import json
import subprocess
import sys

from tests.conftest import read_records, run_slurmgen, slurmgen_processes

NR_REASONS = {"success", "filter_by_en", "filter_by_classifier", "filter_by_score", "filter_by_score_wo_json",
              "filter_by_no_question", "filter_by_no_answer", "filter_by_no_boxed_answer",
              "filter_by_question_wo_json"}


def test_nr_run_writes_one_record_per_task_and_leaves_nothing_running(run_dir):
    run_slurmgen("workflow=nr", "dataset.limit=200", f"run.dir={run_dir}", "run.peers=3", "llm.time_scale=200")
    recs = read_records(run_dir)
    assert len(recs) == 200
    assert len({r.task_id for r in recs}) == 200
    assert {r.reason for r in recs} <= NR_REASONS
    assert {r.status for r in recs} <= {"ok", "rejected"}
    assert any(r.status == "ok" for r in recs) and any(r.status == "rejected" for r in recs)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_total"] == 200
    assert summary["tasks_ok"] + summary["tasks_rejected"] + summary["tasks_failed"] == 200
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0 and summary["tokens_per_s"] > 0
    assert summary["prompt_tokens"] == sum(u.prompt_tokens for r in recs for u in r.usage.values())
    assert slurmgen_processes(run_dir) == []


def test_orchestrators_never_pass_through_registry_or_driver(run_dir):
    run_slurmgen("workflow=nr", "dataset.limit=120", f"run.dir={run_dir}", "run.peers=3", "llm.time_scale=200")
    state = run_dir / "state"
    registry = json.loads((state / "stats-registry.json").read_text())["received"]
    assert registry, "the registry recorded what it received"
    assert set(registry) <= {"Register", "Heartbeat", "Unregister", "Lookup"}, registry
    peers = [json.loads(p.read_text()) for p in sorted(state.glob("stats-peer-*.json"))]
    assert len(peers) == 3
    # tasks really hopped between peers: every peer received orchestrators from the others
    assert all(p["received"].get("orch", 0) > 0 for p in peers), peers
    assert sum(p["received"].get("orch_home", 0) for p in peers) > 0
    # the driver has no socket at all: it does not even load the one module that makes them
    code = "import sys, slurmgen.run.driver; print('slurmgen.transport.sockets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
