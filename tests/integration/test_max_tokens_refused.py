"""A max_tokens above what the servers accept is refused once they are up, before any task:
exit 2 naming the key and the server's max_model_len, no record written."""

from __future__ import annotations

from pathlib import Path

from slurmgen.exitcodes import Exit
from tests.conftest import read_records, run_slurmgen, slurmgen_processes


def test_nr_defaults_on_a_short_model_are_refused_before_any_task(tmp_path: Path):
    run_dir = tmp_path / "run"
    # NR's default score max_tokens is 10240, question 20480; this server's model holds 8192
    proc = run_slurmgen("workflow=nr", "llm.max_model_len=8192", "dataset.limit=4", f"run.dir={run_dir}",
                        "run.progress=false", check=False, timeout=180)
    assert proc.returncode == Exit.REFUSED, proc.stderr
    assert "refused before any task was issued" in proc.stderr
    assert "workflow.score_sampling.max_tokens=10240 is above the servers' max_model_len" in proc.stderr
    assert "workflow.question_sampling.max_tokens=20480" in proc.stderr and " 8192)" in proc.stderr
    assert read_records(run_dir) == []
    assert slurmgen_processes(run_dir) == []


def test_max_tokens_within_the_model_length_runs(tmp_path: Path):
    run_dir = tmp_path / "run"
    proc = run_slurmgen("workflow=nr", "llm.max_model_len=8192", "workflow.score_sampling.max_tokens=4096",
                        "workflow.question_sampling.max_tokens=4096", "dataset.limit=4", f"run.dir={run_dir}",
                        "run.progress=false", timeout=180)
    assert proc.returncode == 0 and len(read_records(run_dir)) == 4
    assert not (run_dir / "state" / "refused").exists()
