"""A run with program-aware serving on, as a user asks for it: `llm.routing=prefix
llm.scheduling_policy=priority`. Every request then carries `priority`, which a server
without --scheduling-policy priority answers with 400 (tests/integration/test_sim_prefix_cache):
so every task finishing, with no LLM error at any peer, shows the replicas were started
with the flag; the peers also poll the replicas' KV pressure and capacity meanwhile, and (with
llm.kv_fill) each counts its finished tasks' KV footprint (recorded in the task wherever its
hops ran)."""

import json
import subprocess
import sys

from tests.conftest import REPO, read_records, run_slurmgen


def test_coral_with_prefix_routing_priority_and_kv_fill_finishes_every_task(run_dir):
    run_slurmgen("workflow=coral", "dataset.limit=12", f"run.dir={run_dir}", "run.peers=2", "llm.time_scale=200",
                 "llm.routing=prefix", "llm.scheduling_policy=priority", "llm.kv_fill=0.9")
    recs = read_records(run_dir)
    assert len(recs) == 12 and {r.status for r in recs} <= {"ok", "rejected"}, {r.reason for r in recs}
    stats = [json.loads(p.read_text()) for p in (run_dir / "state").glob("stats-peer-*.json")]
    per_replica = [s for peer in stats for s in peer["llm"].values()]
    assert len(stats) == 2 and sum(s["ok"] for s in per_replica) > 24
    assert sum(s["errors"] + s["retries"] for s in per_replica) == 0
    for peer in stats:
        gate = peer["kv_admission"]
        # two simulated replicas of the 8B profile's 25,000 blocks of 16 tokens; two peers share them
        assert gate["capacity_tokens"] == 2 * 25_000 * 16 and gate["share"] == 0.5, gate
        assert gate["tasks_ended"] > 0 and gate["expected_tokens"] > 500, gate
    status = subprocess.run([sys.executable, "-m", "slurmgen", "status", str(run_dir)], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert status.returncode == 0, status.stderr
    assert "KV admission: new tasks held" in status.stdout and "the replicas hold 800000 tokens" in status.stdout, \
        status.stdout
