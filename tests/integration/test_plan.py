"""``slurmgen plan`` on a real (simulator) run, as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, run_slurmgen


def test_the_command_on_a_real_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_slurmgen("workflow=nr", "dataset.limit=20", "llm.time_scale=300", "run.progress=false", f"run.dir={run}")
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "plan", str(run), "--records", "100000", "--hours", "2",
                           "--output", "json"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["records"] == 100000 and plan["calibration"]["records"] == 20
    assert "dataset.limit=100000" in plan["overrides"] and plan["expected_finish_h"] <= 2
    text = subprocess.run([sys.executable, "-m", "slurmgen", "plan", str(run), "--records", "100000", "--hours", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "python -m slurmgen workflow=nr dataset.limit=100000 llm.replicas=" in text
    bad = subprocess.run([sys.executable, "-m", "slurmgen", "plan", str(tmp_path), "--records", "1", "--hours", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "not a finished run" in bad.stderr
