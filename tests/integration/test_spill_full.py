"""A spill store that fills up (a node's small /tmp) never stalls the run: payloads go
inline, counted, and spill again once frees made room."""

import json

from tests.conftest import read_records, run_slurmgen


def test_a_tiny_spill_map_ends_with_every_task_once_and_counts_inline_fallbacks(tmp_path):
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=coral", "run.trials=10", "spill.max_bytes=1048576", "spill.threshold_bytes=64",
                 f"spill.dir={tmp_path / 'spill'}", f"run.dir={run_dir}", "llm.time_scale=300", timeout=600)
    ids = [r.task_id for r in read_records(run_dir)]
    assert len(ids) == 3000 and len(set(ids)) == 3000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_total"] == 3000 and summary["spill_inline_fallbacks"] > 0
    logs = "".join(p.read_text() for p in (run_dir / "logs").glob("peer-*.log"))
    assert "never retrieved" not in logs and "MapFullError" not in logs
    assert "is full" in logs and "spilling resumes" in logs  # it filled, and it recovered
    status = run_slurmgen("status", str(run_dir))
    assert f"spill: {summary['spill_inline_fallbacks']} times payloads went inline" in status.stdout
    print("tiny map:", len(ids), "records,", len(ids) - len(set(ids)), "duplicates,",
          summary["spill_inline_fallbacks"], "inline fallbacks,", summary["wall_s"], "s")
