"""``slurmgen plan`` on the real local cluster: calibrate, plan (checked against sinfo), run
the plan's overrides as SLURM jobs. How close the predicted wall time comes is measured by
``tools/plan_check.py`` (figures, not a timed assertion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slurmgen.launchers.fit import parse_sinfo
from tests.conftest import REPO, read_records, run_slurmgen
from tests.slurm.test_slurm_run import FAST, sacct, squeue

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slurmgen", "plan", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)


def default_partition() -> tuple[str, int]:
    """(name, CPUs of its nodes) of the cluster's default partition, as sinfo says."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%G|%l"], capture_output=True, text=True,
                         check=True).stdout
    nodes = [n for n in parse_sinfo(out) if n.default]
    return nodes[0].partition, sum(n.cpus for n in nodes)


def test_calibrate_plan_against_sinfo_and_run_the_plan(slurm_cluster: None, tmp_path: Path, job_prefix: str) -> None:
    common = [*FAST, "llm.replicas=1", "run.peers=2", "run.max_in_flight=16", f"cluster.job_prefix={job_prefix}"]
    cal = tmp_path / "cal"
    run_slurmgen(*common, "dataset.limit=300", "run.progress=false", f"run.dir={cal}", timeout=200)
    proc = plan(str(cal), "--records", "600", "--hours", "1", "--nodes-from-sinfo", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    fits, out = doc["fits"], doc["plan"]
    # llm.slurm.cpus_per_task=2 (the default) + 2 peers x 1 CPU, on the partition's nodes
    assert fits["short"] == [] and fits["asked"]["cpus"] == 4 and (fits["partition"], fits["have"]["cpus"]) == default_partition()
    assert out["calibration"]["phases"]["startup_s"] > 0 and out["expected_wall_s"] > out["steady_s"] > 0
    assert out["overrides"] == ["workflow=nr", "dataset.limit=600", "run.trials=1", "llm.replicas=1", "run.peers=2",
                                "run.max_in_flight=16"]
    run = tmp_path / "run"
    run_slurmgen(*common, *out["overrides"][1:], "run.progress=false", f"run.dir={run}", timeout=200)
    ids = {r.task_id for r in read_records(run)}
    assert len(ids) == out["records_planned"] == 600
    assert sum(name == f"{job_prefix}-peer" for _, name, _ in sacct(job_prefix)) == 4  # 2 runs x 2 peers
    assert squeue(job_prefix) == []


def test_a_plan_the_partition_cannot_hold_names_the_short_resource(slurm_cluster: None, tmp_path: Path) -> None:
    cal = Path(__file__).parent  # any directory: the calibration is read first
    bad = plan(str(cal), "--records", "10", "--hours", "1", "--nodes-from-sinfo")
    assert bad.returncode == 2 and "not a finished run" in bad.stderr
    run = tmp_path / "cal"  # locally, 1 replica x 2 CPUs + 2 peers x 1 CPU; the plan asks for ~20 x that
    run_slurmgen("workflow=nr", "dataset.limit=300", "run.max_in_flight=16", "llm.time_scale=300", "llm.replicas=1",
                 "run.progress=false", f"run.dir={run}")
    proc = plan(str(run), "--records", "2000000", "--hours", "0.05", "--nodes-from-sinfo")
    assert proc.returncode == 2, proc.stderr
    name, cpus = default_partition()
    assert "CPUs: the plan asks" in proc.stderr and f"in all, partition {name} has {cpus}" in proc.stderr
    assert "these jobs would wait in the queue:" in proc.stderr and "DOES NOT FIT" in proc.stdout
    assert "python -m slurmgen workflow=nr" in proc.stdout, "the plan is printed all the same"
