"""slurmgen on a real SLURM cluster: job arrays, resubmission, hetjob, the submitit launcher.

Bring the cluster up with ``bash tools/slurm_cluster.sh up``; without it every test skips.
Run directories live under pytest's tmp_path, which the jobs see (one machine); on a
multi-host cluster ``--basetemp`` must be on a shared filesystem.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, read_records, run_slurmgen

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

FAST = ["workflow=nr", "llm.time_scale=200", "cluster=slurm", "cluster.poll_s=1", "cluster.peer.mem=500M",
        "llm.slurm.mem=500M"]


def task_ids(run_dir: Path, *, live: bool = False) -> list[str]:
    return [r.task_id for r in read_records(run_dir, live=live)]


def sacct(prefix: str) -> list[tuple[str, str, str]]:
    """(job id, name, state) of every job whose name starts with prefix."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,JobName,State", "-S", "now-1hour"],
                         capture_output=True, text=True, check=True).stdout
    rows = [tuple(line.split("|")) for line in out.splitlines() if line.strip()]
    return [r for r in rows if r[1].startswith(prefix)]  # type: ignore[misc]


def squeue(prefix: str) -> list[tuple[str, str, str]]:
    """Pending or running jobs of the test (COMPLETING = already ended, being cleaned up)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T"], capture_output=True, text=True, check=True).stdout
    rows = [tuple(line.split("|")) for line in out.splitlines() if line.strip()]
    return [r for r in rows if r[1].startswith(prefix) and r[2] != "COMPLETING"]  # type: ignore[misc]


def test_nr_run_with_servers_and_peers_as_job_arrays(slurm_cluster: None, tmp_path: Path, job_prefix: str) -> None:
    run_dir = tmp_path / "run"
    proc = run_slurmgen(*FAST, "dataset.limit=60", "run.peers=3", "llm.replicas=2", f"run.dir={run_dir}",
                        f"cluster.job_prefix={job_prefix}", timeout=200)
    ids = task_ids(run_dir)
    assert len(ids) == 60 and len(set(ids)) == 60
    assert json.loads((run_dir / "summary.json").read_text())["tasks_total"] == 60
    jobs = sacct(job_prefix)
    names = {name for _, name, _ in jobs}
    assert names == {f"{job_prefix}-llm", f"{job_prefix}-peer"}, jobs
    assert sum(name.endswith("-peer") for _, name, _ in jobs) == 3, jobs  # one array task per shard
    assert "submitted SLURM jobs" in proc.stderr
    assert squeue(job_prefix) == [], "the driver cancels every job of the run at the end"


def test_two_llm_pools_run_as_two_job_arrays(slurm_cluster: None, tmp_path: Path, job_prefix: str) -> None:
    """coral with llms=teacher_student on SLURM: the teacher's pool is its own array."""
    run_dir = tmp_path / "run"
    run_slurmgen(*FAST[1:], "workflow=coral", "llms=teacher_student", "llms.teacher.time_scale=200",
                 "llms.teacher.slurm.mem=500M", "llms.teacher.replicas=1", "dataset.limit=12", "run.peers=2",
                 "llm.replicas=1", f"run.dir={run_dir}", f"cluster.job_prefix={job_prefix}", timeout=200)
    recs = read_records(run_dir)
    assert len({r.task_id for r in recs}) == len(recs) == 12
    assert {t.model for r in recs for t in r.history if t.role == "teacher"} == {"sim-llama-3.1-70b"}
    assert {t.model for r in recs for t in r.history if t.role == "student" and t.model} == {"sim-llama-3.1-8b"}
    jobs = sacct(job_prefix)
    names = sorted(name for _, name, _ in jobs)
    assert names == [f"{job_prefix}-llm", f"{job_prefix}-llm-teacher", f"{job_prefix}-peer",
                     f"{job_prefix}-peer"], jobs
    assert len({jid.split("_")[0] for jid, name, _ in jobs if "-llm" in name}) == 2, "one array per pool"
    assert squeue(job_prefix) == []


def _wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def signal_mid_run(args: list[str], run_dir: Path, job_prefix: str, component: str, index: int, *,
                   after: int, scancel: tuple[str, ...] = (), timeout: float = 200) -> tuple[str, int, str]:
    """Start the driver, wait for ``after`` records, ``scancel`` array task ``index`` of
    ``component`` (with extra scancel flags), let the run end: (job id, return code, stderr)."""
    driver = subprocess.Popen([sys.executable, "-m", "slurmgen", *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: len(read_records(run_dir, live=True)) >= after if (run_dir / "results").exists() else False,
              180, "the first records")
        jobs = [jid for jid, name, _ in squeue(job_prefix) if name.endswith(f"-{component}")
                and jid.endswith(f"_{index}")]
        assert jobs, squeue(job_prefix)
        subprocess.run(["scancel", *scancel, jobs[0]], check=True)
        _, err = driver.communicate(timeout=timeout)
    finally:
        driver.kill()
    return jobs[0], driver.returncode, err


def test_a_cancelled_agent_array_task_is_resubmitted_and_resumes(slurm_cluster: None, tmp_path: Path,
                                                                  job_prefix: str) -> None:
    run_dir = tmp_path / "run"
    args = [*FAST, "dataset.limit=150", "run.peers=2", "llm.replicas=1", "llm.time_scale=10", "run.max_in_flight=16",
            f"run.dir={run_dir}", f"cluster.job_prefix={job_prefix}"]
    peer_1, code, err = signal_mid_run(args, run_dir, job_prefix, "peer", 1, after=15)
    assert code == 0, err
    assert f"(job {peer_1}) ended CANCELLED: resubmitted as job" in err
    ids = task_ids(run_dir)
    assert len(ids) == 150 and len(set(ids)) == 150, "every task exactly once"
    states = {jid: state for jid, _, state in sacct(job_prefix)}
    assert states[peer_1].startswith("CANCELLED")


def test_a_preempted_agent_task_checkpoints_requeues_and_resumes(slurm_cluster: None, tmp_path: Path,
                                                                   job_prefix: str) -> None:
    """USR2 is what SLURM sends before preemption / the time limit (--signal=USR2@...)."""
    run_dir = tmp_path / "run"
    args = [*FAST, "dataset.limit=150", "run.peers=2", "llm.replicas=1", "llm.time_scale=10", "run.max_in_flight=16",
            f"run.dir={run_dir}", f"cluster.job_prefix={job_prefix}"]
    peer_1, code, err = signal_mid_run(args, run_dir, job_prefix, "peer", 1, after=15, scancel=("--signal=USR2",))
    assert code == 0, err
    ids = task_ids(run_dir)
    assert len(ids) == 150 and len(set(ids)) == 150, "every task exactly once"
    history = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-o", "State", "-j", peer_1],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "REQUEUED" in history, history
    assert "resubmitted" not in err, "submitit's requeue handled it, not a resubmission"
    assert squeue(job_prefix) == []


def test_hetjob_packs_a_server_and_a_peer_per_job(slurm_cluster: None, tmp_path: Path, job_prefix: str) -> None:
    run_dir = tmp_path / "run"
    run_slurmgen(*FAST, "cluster.hetjob=true", "dataset.limit=30", "run.peers=2", "llm.replicas=1",
                 f"run.dir={run_dir}", f"cluster.job_prefix={job_prefix}", timeout=200)
    ids = task_ids(run_dir)
    assert len(ids) == 30 and len(set(ids)) == 30
    names = [name for _, name, _ in sacct(job_prefix)]
    assert f"{job_prefix}-het" in names, names  # llm-0 + peer-0 in one heterogeneous job
    ranks = {p.name.split("_")[1] for p in (run_dir / "slurm" / "het").glob("*_result.pkl")}
    assert {"0", "1"} <= ranks, "both components (server: rank 0, peer: rank 1) ran the job function"


def test_a_server_that_never_gets_ready_fails_the_run_naming_job_log_and_field(
        slurm_cluster: None, tmp_path: Path, job_prefix: str) -> None:
    run_dir = tmp_path / "run"
    proc = run_slurmgen(*FAST, "dataset.limit=10", "llm.replicas=1", "run.peers=1", "llm.extra_args=[--no-such-flag]",
                        f"run.dir={run_dir}", f"cluster.job_prefix={job_prefix}", timeout=120, check=False)
    assert proc.returncode == 3, proc.stderr  # Exit.STARTUP
    assert "llm-0 (SLURM job" in proc.stderr and "did not become ready" in proc.stderr
    assert "llm.ready_timeout_s" in proc.stderr and str(run_dir / "slurm") in proc.stderr
    assert squeue(job_prefix) == []


def test_submitit_launcher_multirun_gives_each_sweep_its_own_run_dir(slurm_cluster: None, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    run_slurmgen("-m", "workflow=nr", "llm.time_scale=200", "dataset.limit=10,20", "hydra/launcher=submitit",
                 "hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=2", f"hydra.sweep.dir={sweep}",
                 timeout=200)
    totals = sorted(json.loads(p.read_text())["tasks_total"] for p in sweep.glob("*/summary.json"))
    assert totals == [10, 20]
    assert list((sweep / ".submitit").iterdir()), "the drivers ran as SLURM jobs"


def test_a_cancelled_llm_replica_is_resubmitted_while_the_other_serves(slurm_cluster: None, tmp_path: Path,
                                                                        job_prefix: str) -> None:
    run_dir = tmp_path / "run"
    args = [*FAST, "dataset.limit=300", "run.peers=2", "llm.replicas=2", "llm.time_scale=5", "run.max_in_flight=16",
            f"run.dir={run_dir}", f"cluster.job_prefix={job_prefix}"]
    llm_0, code, err = signal_mid_run(args, run_dir, job_prefix, "llm", 0, after=30, timeout=240)
    assert code == 0, err
    assert f"llm-0 (job {llm_0}) ended CANCELLED: resubmitted as job" in err
    recs = read_records(run_dir)
    assert len(recs) == 300 and len({r.task_id for r in recs}) == 300, "every task exactly once"
    assert {r.status for r in recs} <= {"ok", "rejected"}, [r.reason for r in recs if r.status == "failed"][:3]
    assert sum(name.endswith("-llm") for _, name, _ in sacct(job_prefix)) == 3  # 2 replicas + the resubmission
    registry = (run_dir / "logs" / "registry.log").read_text()
    addresses = re.findall(r"registered llm-0 \(llm\) at (\S+)", registry)
    assert len(set(addresses)) == 2, "the resubmitted replica registered again, on its new address"
