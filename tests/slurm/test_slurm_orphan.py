"""A driver killed with SIGKILL on SLURM: its jobs notice the silent heartbeat and stop
themselves (no GPU held until the time limit); the same command resumes the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, read_records, run_slurmgen
from tests.slurm.test_slurm_run import FAST, _wait, sacct, squeue

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]


def test_jobs_of_a_killed_driver_stop_themselves_and_the_run_resumes(slurm_cluster: None, tmp_path: Path,
                                                                     job_prefix: str) -> None:
    run_dir = tmp_path / "run"
    args = [*FAST, "dataset.limit=200", "run.peers=2", "llm.replicas=1", "llm.time_scale=5",
            "run.max_in_flight=8", "cluster.orphan_timeout_s=10", f"run.dir={run_dir}",
            f"cluster.job_prefix={job_prefix}"]
    driver = subprocess.Popen([sys.executable, "-m", "slurmgen", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: len(read_records(run_dir, live=True)) >= 10 if (run_dir / "results").exists() else False,
              120, "the first records")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    killed_at = time.monotonic()
    assert len(squeue(job_prefix)) == 3, "the jobs outlive their driver at first"
    _wait(lambda: squeue(job_prefix) == [], 120, "the orphaned jobs to end")
    took = time.monotonic() - killed_at
    _wait(lambda: not {s for _, _, s in sacct(job_prefix)} & {"RUNNING", "PENDING", "COMPLETING"}, 30,
          "accounting to record the jobs' end (slurmdbd lags squeue)")
    states = {state for _, _, state in sacct(job_prefix)}
    assert states == {"COMPLETED"}, sacct(job_prefix)  # stopped by themselves: not cancelled, not failed
    job_logs = "".join(p.read_text(errors="replace") for p in (run_dir / "slurm").glob("*/*.out"))
    assert "the driver has not beaten for" in job_logs and "cluster.orphan_timeout_s=10" in job_logs
    assert took > 5, f"jobs ended {took:.0f} s after the kill: before the timeout"
    before = len(read_records(run_dir, live=True))
    assert before < 200, "the kill came before the end of the run"

    proc = run_slurmgen(*args, timeout=240)  # the same command resumes
    recs = read_records(run_dir)
    assert len(recs) == 200 and len({r.task_id for r in recs}) == 200, "every task exactly once"
    assert {r.status for r in recs} <= {"ok", "rejected"}, "no task failed because its servers went away"
    assert "200 records" in proc.stdout
