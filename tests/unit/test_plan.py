"""``slurmgen plan``: the sizing arithmetic, on a calibration run written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from slurmgen.capacity.calibration import load
from slurmgen.capacity.sizing import size
from slurmgen.errors import ConfigError


def calibration_run(root: Path) -> Path:
    """100 records over 50 s active (10 s of start-up before); pool default: 2 replicas,
    1000 tokens a record; pool judge: 1 replica with 4 GPUs, 250 tokens a record; 2 peers, 2 tool pools."""
    run = root / "cal"
    (run / "results").mkdir(parents=True)
    lines = [json.dumps({"task_id": f"{i}:0", "created_at": 1000.0 + i * 0.4, "finished_at": 1000.0 + (i + 1) * 0.5})
             for i in range(100)]
    (run / "results" / "shard-00000.jsonl").write_text("\n".join(lines) + "\n")
    pool = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0}
    (run / "summary.json").write_text(json.dumps({
        "tasks_total": 100, "wall_s": 60.0,
        "usage_by_pool": {"default": {**pool, "prompt_tokens": 90000, "completion_tokens": 10000, "requests": 300},
                          "judge": {**pool, "prompt_tokens": 25000, "requests": 100}}}))
    (run / "config.yaml").write_text(yaml.safe_dump({
        "workflow": {"name": "tau2", "toolpool_factory": "x:y"}, "run": {"peers": 2},
        "toolpool": {"size": -1, "factory": ""}, "llm": {"replicas": 2, "slurm": {"gpus_per_node": 0}},
        "llms": {"judge": {"replicas": 1, "slurm": {"gpus_per_node": 4}}}}))
    return run


def test_calibration_reads_rates_per_replica_and_start_up(tmp_path: Path) -> None:
    cal = load(calibration_run(tmp_path))
    assert cal.active_s == pytest.approx(50.0) and cal.startup_s == pytest.approx(10.0)
    assert cal.records_per_s == pytest.approx(2.0) and cal.toolpool_size == 2
    default, judge = cal.pools
    assert (default.pool, default.tokens_per_record, default.tokens_per_s_per_replica) == ("default", 1000, 1000)
    assert (judge.pool, judge.tokens_per_record, judge.tokens_per_s_per_replica, judge.gpus_per_replica) == (
        "judge", 250, 500, 4)


def test_sizing_for_ten_times_the_records_in_the_same_time(tmp_path: Path) -> None:
    cal = load(calibration_run(tmp_path))
    plan = size(cal, records=1000, hours=60 / 3600, gpus_per_node=8)  # 50 s after the start-up, as calibrated
    assert [(p.pool, p.replicas, p.gpus) for p in plan.pools] == [("default", 20, 0), ("judge", 10, 40)]
    assert plan.records_per_s == pytest.approx(20.0) and plan.peers == 20 and plan.toolpool_size == 20
    assert plan.expected_finish_h == pytest.approx(60 / 3600) and plan.gpu_nodes == 5
    assert plan.gpu_hours == pytest.approx(40 * 60 / 3600)
    assert plan.overrides == ["workflow=tau2", "dataset.limit=1000", "llm.replicas=20", "llms.judge.replicas=10",
                              "run.peers=20", "toolpool.size=20"]
    assert size(cal, 1000, 60 / 3600, gpu_budget=0.5).over_budget
    with pytest.raises(ConfigError, match="give more hours"):
        size(cal, 1000, 5 / 3600)
