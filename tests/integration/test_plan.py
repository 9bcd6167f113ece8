"""``slurmgen plan`` on a real (simulator) run, as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, run_slurmgen


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slurmgen", "plan", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_command_on_a_real_run(tmp_path: Path) -> None:
    run = tmp_path / "run"  # 200 records, 16 in flight: a steady phase of ~180 records
    run_slurmgen("workflow=nr", "dataset.limit=200", "run.max_in_flight=16", "llm.time_scale=300",
                 "run.progress=false", f"run.dir={run}")
    proc = plan(str(run), "--records", "100000", "--hours", "2", "--no-sinfo", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    out, cal = doc["plan"], doc["plan"]["calibration"]
    assert doc["fits"] is None, "--no-sinfo: not checked"
    assert out["records"] == 100000 and cal["records"] == 200 and cal["bound"] in ("in_flight", "llm")
    assert cal["phases"]["launch_s"] > 0 and cal["phases"]["startup_s"] > 0 and cal["phases"]["report_s"] > 0
    assert cal["steady"]["window_records"] >= 20 and cal["steady"]["in_flight"] <= 16
    assert out["records_planned"] >= 100000 and "dataset.limit=1000" in out["overrides"]  # the built-in 1,000 rows
    assert f"run.trials={out['records_planned'] // 1000}" in out["overrides"]
    # each figure rounded to 0.1 s on its own: the sum within a rounding step
    assert abs(out["expected_wall_s"] - (out["fixed_s"] + out["steady_s"])) <= 0.1 and out["expected_wall_s"] <= 2 * 3600
    text = plan(str(run), "--records", "100000", "--hours", "2", "--no-sinfo")
    assert text.returncode == 0, text.stderr
    assert "python -m slurmgen workflow=nr dataset.limit=1000 run.trials=100 llm.replicas=" in text.stdout
    assert "expected: " in text.stdout and "bound by the" in text.stdout and "fixed: launch " in text.stdout
    assert "sinfo: not checked" in text.stdout


def test_refusals_say_what_to_do(tmp_path: Path) -> None:
    bad = plan(str(tmp_path), "--records", "1", "--hours", "1")
    assert bad.returncode == 2 and "not a finished run" in bad.stderr
    run = tmp_path / "run"  # 20 records, all in flight at once: a latency, not a rate
    run_slurmgen("workflow=nr", "dataset.limit=20", "llm.time_scale=300", "run.progress=false", f"run.dir={run}")
    short = plan(str(run), "--records", "1000", "--hours", "1", "--no-sinfo")
    assert short.returncode == 2 and "no steady phase" in short.stderr and "dataset.limit=768" in short.stderr
