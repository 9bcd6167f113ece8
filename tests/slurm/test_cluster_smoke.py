"""Smoke tests against a real SLURM cluster (bring one up with ``tools/slurm_cluster.sh up``).

They check the things slurmgen relies on: plain ``sbatch`` jobs finish and are
recorded by ``sacct`` (submitit polls job state through sacct only), a submitit
``AutoExecutor`` job returns its result, ``map_array`` produces a working job
array, and the cluster has several nodes (heterogeneous jobs need one node per
component).  Every test skips, with the reason, when ``sinfo`` is not installed
or the controller does not answer ``scontrol ping``.

Job folders live under pytest's ``tmp_path``: the jobs run on this machine, so
the path is visible to them.  On a multi-host cluster ``--basetemp`` must point
at a shared filesystem.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from pathlib import Path

import pytest

PER_TEST_S = 60  # budget per test; job waits below stay well inside it

pytestmark = [pytest.mark.slurm]
if importlib.util.find_spec("pytest_timeout") is not None:
    pytestmark.append(pytest.mark.timeout(PER_TEST_S))


def _run(*cmd: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def cluster() -> None:
    """Skip (not fail) when there is no reachable SLURM controller."""
    if shutil.which("sinfo") is None:
        pytest.skip("sinfo not found: SLURM is not installed (run `bash tools/slurm_cluster.sh up` as root)")
    try:
        ping = _run("scontrol", "ping", timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"`scontrol ping` did not run: {exc}")
    if ping.returncode != 0 or "is UP" not in ping.stdout:
        detail = (ping.stdout + ping.stderr).strip().splitlines()
        pytest.skip(
            "SLURM controller not reachable (`scontrol ping`: "
            f"{detail[0] if detail else 'rc=' + str(ping.returncode)}); "
            "run `bash tools/slurm_cluster.sh up` as root"
        )


def _sacct_state(job_id: str) -> str:
    out = _run("sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id).stdout.split()
    return out[0] if out else ""


def _wait_final_state(job_id: str, timeout: float) -> str:
    """Poll sacct until the job has left the pending/running states (or the deadline passes)."""
    deadline = time.monotonic() + timeout
    state = _sacct_state(job_id)
    while state in {"", "PENDING", "RUNNING", "COMPLETING", "REQUEUED"} and time.monotonic() < deadline:
        time.sleep(0.5)
        state = _sacct_state(job_id)
    return state


def _wait_result(job, timeout: float):
    """job.result() with a deadline; done() checks the result pickle before polling sacct."""
    deadline = time.monotonic() + timeout
    while not job.done(force_check=True):
        if time.monotonic() > deadline:
            job.cancel(check=False)
            pytest.fail(f"submitit job {job.job_id} not done after {timeout:.0f}s (state {job.state})")
        time.sleep(0.5)
    return job.result()


def test_cluster_has_several_usable_nodes(cluster: None) -> None:
    rows = _run("sinfo", "-h", "-N", "-o", "%N %T").stdout.split("\n")
    states = dict(r.split(None, 1) for r in rows if r.strip())
    usable = [n for n, s in states.items() if s.rstrip("*~#") in {"idle", "mixed", "allocated", "completing"}]
    assert len(states) >= 2, f"need >= 2 nodes for heterogeneous jobs, sinfo shows {states}"
    assert len(usable) >= 2, f"fewer than 2 usable nodes: {states}"


def test_sbatch_job_completes_and_is_accounted(cluster: None, tmp_path: Path) -> None:
    out = tmp_path / "hello-%j.out"
    sub = _run("sbatch", "--parsable", "-J", "slurmgen-smoke", "-n1", "-t", "1", "-o", str(out),
               "--wrap", "echo hello-from-$SLURM_JOB_ID")
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip().split(";")[0]

    state = _wait_final_state(job_id, 45)
    assert state == "COMPLETED", f"job {job_id}: sacct state {state!r} (is accounting via slurmdbd on?)"
    assert (tmp_path / f"hello-{job_id}.out").read_text().strip() == f"hello-from-{job_id}"


def test_submitit_autoexecutor_returns_result(cluster: None, tmp_path: Path) -> None:
    submitit = pytest.importorskip("submitit")

    def add_and_report(a: int, b: int) -> tuple[int, str]:
        import os  # runs inside the job; a local function is pickled by value

        return a + b, os.environ.get("SLURM_JOB_ID", "")

    executor = submitit.AutoExecutor(folder=tmp_path / "%j")
    assert executor.cluster == "slurm"
    executor.update_parameters(timeout_min=2, cpus_per_task=1, name="slurmgen-smoke-submit")
    job = executor.submit(add_and_report, 2, 3)
    total, seen_id = _wait_result(job, 45)
    assert total == 5
    assert seen_id == job.job_id
    # the result pickle appears before the job ends; accounting must then report COMPLETED
    assert _wait_final_state(job.job_id, 15) == "COMPLETED"


def test_submitit_map_array_three_tasks(cluster: None, tmp_path: Path) -> None:
    submitit = pytest.importorskip("submitit")

    def square_with_task(x: int) -> tuple[int, str]:
        import os

        return x * x, os.environ.get("SLURM_ARRAY_TASK_ID", "")

    executor = submitit.AutoExecutor(folder=tmp_path / "%j")  # %j = <array id>_<task id>
    executor.update_parameters(timeout_min=2, cpus_per_task=1, slurm_array_parallelism=3,
                               name="slurmgen-smoke-array")
    jobs = executor.map_array(square_with_task, [1, 2, 3])
    assert len(jobs) == 3
    array_ids = {j.job_id.split("_")[0] for j in jobs}
    assert len(array_ids) == 1, f"expected one job array, got {[j.job_id for j in jobs]}"

    deadline = time.monotonic() + 50
    results = [_wait_result(j, max(1.0, deadline - time.monotonic())) for j in jobs]
    assert [r[0] for r in results] == [1, 4, 9]
    assert [r[1] for r in results] == ["0", "1", "2"]
