"""``slurmgen plan``: the calibration's phases and steady rate, and the sizing arithmetic,
on a calibration run written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from slurmgen.capacity.calibration import load
from slurmgen.capacity.sizing import size
from slurmgen.errors import ConfigError
from slurmgen.launchers.planfit import _place, _short


def calibration_run(root: Path, records: int = 100, in_flight: int = 10) -> Path:
    """A closed loop of ``in_flight`` tasks of 1 s each (task i issued at 1000 + 0.1 i, as task
    i - 10 finishes): 10 records/s. The driver process started at 995, the run at 997 (3 s of
    start-up before the first issue), stopped 1 s after the last record; the report took 2 s.
    Pool default: 2 replicas, 1000 tokens a record; pool judge: 1 replica with 4 GPUs, 250
    tokens a record; 2 peers, 2 tool-pool members."""
    run = root / "cal"
    (run / "results").mkdir(parents=True)
    lines = [json.dumps({"task_id": f"{i}:0", "created_at": 1000.0 + i * 0.1, "finished_at": 1001.0 + i * 0.1})
             for i in range(records)]
    (run / "results" / "shard-00000.jsonl").write_text("\n".join(lines) + "\n")
    pool = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0}
    last = 1001.0 + (records - 1) * 0.1
    (run / "summary.json").write_text(json.dumps({
        "tasks_total": records, "wall_s": last + 1.0 - 997.0, "measured_from": 997.0, "launched_at": 995.0,
        "report_s": 2.0,
        "usage_by_pool": {"default": {**pool, "prompt_tokens": 900 * records, "completion_tokens": 100 * records,
                                      "requests": 3 * records},
                          "judge": {**pool, "prompt_tokens": 250 * records, "requests": records}}}))
    (run / "config.yaml").write_text(yaml.safe_dump({
        "workflow": {"name": "tau2", "toolpool_factory": "x:y"}, "run": {"peers": 2, "max_in_flight": in_flight},
        "toolpool": {"size": -1, "factory": ""}, "llm": {"replicas": 2, "slurm": {"gpus_per_node": 0}},
        "llms": {"judge": {"replicas": 1, "slurm": {"gpus_per_node": 4}}}}))
    return run


def test_calibration_splits_the_wall_time_into_fixed_phases_and_a_steady_rate(tmp_path: Path) -> None:
    cal = load(calibration_run(tmp_path))
    ph = cal.phases
    assert (ph.launch_s, ph.startup_s, ph.report_s) == pytest.approx((2.0, 3.0, 2.0))
    assert ph.stop_s == pytest.approx(1.0) and ph.ramp_s == pytest.approx(0.9, abs=0.05)  # 10.9 s active - 100 / 10
    assert cal.records_per_s == pytest.approx(10.0, rel=1e-3) and cal.bound == "in_flight"
    assert cal.steady.in_flight == pytest.approx(10, abs=0.5) and cal.toolpool_size == 2
    assert cal.wall_s == pytest.approx(2 + 14.9 + 2)
    default, judge = cal.pools
    assert (default.pool, default.tokens_per_record, default.tokens_per_s_per_replica) == ("default", 1000,
                                                                                           pytest.approx(5000, 1e-3))
    assert (judge.pool, judge.tokens_per_record, judge.gpus_per_replica) == ("judge", 250, 4)


def test_a_calibration_whose_tasks_were_all_in_flight_at_once_is_refused(tmp_path: Path) -> None:
    run = calibration_run(tmp_path, records=30, in_flight=256)
    lines = [json.dumps({"task_id": f"{i}:0", "created_at": 1000.0, "finished_at": 1001.0 + i * 0.01})
             for i in range(30)]
    (run / "results" / "shard-00000.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"no steady phase.*latency, not a rate.*dataset.limit=768"):
        load(run)


def test_sizing_for_ten_times_the_rate(tmp_path: Path) -> None:
    cal = load(calibration_run(tmp_path))
    fixed = cal.phases.fixed_s  # 8.9 s
    plan = size(cal, records=1000, hours=(fixed + 10) / 3600, gpus_per_node=8)  # 100 records/s needed
    assert [(p.pool, p.replicas, p.gpus) for p in plan.pools] == [("default", 20, 0), ("judge", 10, 40)]
    assert (plan.peers, plan.max_in_flight, plan.toolpool_size) == (20, 100, 20)
    assert plan.records_per_s == pytest.approx(100.0, rel=1e-3) and plan.bound == "in_flight"
    assert plan.expected_wall_s == pytest.approx(fixed + 10, abs=0.1) and plan.gpu_nodes == 5
    assert plan.overrides == ["workflow=tau2", "dataset.limit=1000", "run.trials=1", "llm.replicas=20",
                              "llms.judge.replicas=10", "run.peers=20", "run.max_in_flight=100", "toolpool.size=20"]
    assert size(cal, 1000, (fixed + 10) / 3600, gpu_budget=0.1).over_budget
    with pytest.raises(ConfigError, match="give more hours"):
        size(cal, 1000, 5 / 3600)


def test_a_generous_deadline_asks_fewer_replicas_and_predicts_their_rate(tmp_path: Path) -> None:
    """Peers and the in-flight cap never shrink; pool default goes from 2 replicas to 1,
    halving the rate, and is named as the bound."""
    cal = load(calibration_run(tmp_path))
    plan = size(cal, records=500, hours=10)
    assert [p.replicas for p in plan.pools] == [1, 1] and (plan.peers, plan.max_in_flight) == (2, 10)
    assert plan.records_per_s == pytest.approx(5.0, rel=1e-3) and plan.bound == "llm"
    assert plan.expected_wall_s == pytest.approx(cal.phases.fixed_s + 100, abs=0.1)


def test_a_resource_scaled_less_than_the_others_bounds_the_rate(tmp_path: Path) -> None:
    """3 x the rate: pool default 2 -> 6 replicas, judge 1 -> 3, but the peers' ratio... all 3:
    a target of 1.5 x rounds judge up to 2 (x2) and default to 3 (x1.5): default bounds it."""
    cal = load(calibration_run(tmp_path))
    plan = size(cal, records=150, hours=(cal.phases.fixed_s + 10) / 3600)  # 15 records/s needed
    assert [p.replicas for p in plan.pools] == [3, 2]
    assert plan.records_per_s == pytest.approx(15.0, rel=1e-3) and plan.bound in ("llm", "in_flight")


def test_more_records_than_the_dataset_has_take_trials(tmp_path: Path) -> None:
    run = calibration_run(tmp_path)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"id": str(i)}) + "\n" for i in range(300)))
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "dataset": {"path": str(tmp_path / "rows.jsonl")}}))
    plan = size(load(run), records=1000, hours=10)
    assert plan.records_planned == 1000 and "dataset.limit=250" in plan.overrides and "run.trials=4" in plan.overrides


def test_packing_names_the_short_resource() -> None:
    free = {"n1": [0, 4, 8000], "n2": [0, 4, 8000]}
    assert all(_place(free, (0, 2, 1000)) for _ in range(4)) and not _place(free, (0, 1, 0))
    lines = _short(["sg-peer"], {"gpus": 0, "cpus": 9, "mem_mb": 4000}, {"gpus": 0, "cpus": 8, "mem_mb": 16000}, "debug")
    assert lines == ["these jobs would wait in the queue: sg-peer x1", "CPUs: the plan asks 9 in all, partition debug has 8"]
