import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_slurmgen(*overrides: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m slurmgen`` as a user would; return the finished process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "slurmgen", *overrides], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"slurmgen failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def slurmgen_processes(run_dir: Path) -> list[str]:
    """Command lines of live processes that serve this run directory."""
    out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run_dir) in line]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
