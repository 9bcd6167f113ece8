"""Fixtures of the slurm tier: skip cleanly when no SLURM controller answers."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    if shutil.which("sinfo") is None:
        pytest.skip("sinfo not found: SLURM is not installed (run `bash tools/slurm_cluster.sh up` as root)")
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"`scontrol ping` did not run: {exc}")
    if ping.returncode != 0 or "is UP" not in ping.stdout:
        pytest.skip("SLURM controller not reachable; run `bash tools/slurm_cluster.sh up` as root")


@pytest.fixture
def job_prefix() -> str:
    """A job-name prefix unique to the test, to find its jobs in squeue / sacct."""
    return f"sgt{uuid.uuid4().hex[:6]}"
