"""The kv benchmark section's measurement, small: real simulators, the real coral roles and
LLMClient, a short window; what it returns is what the section writes under `kv`."""

from __future__ import annotations

from tools.bench.kv import KVParams, KVResult, compare, table


def test_one_workload_every_policy_measured_with_ratios() -> None:
    base = KVParams(workflow="coral", policy="least_outstanding", kv_blocks=25_000, concurrency=8, warm_s=1.0,
                    window_s=4.0, time_scale=50.0)
    results = compare(base, ("least_outstanding", "prefix_priority"))
    assert [r.policy for r in results] == ["least_outstanding", "prefix_priority"]
    for r in results:
        assert isinstance(r, KVResult) and r.finished_tasks_per_s > 0 and r.tokens_per_s > 0
        assert 0 < r.prefix_hit_rate < 1 and r.failed_tasks == 0
        assert 0 < r.task_latency_p50_s <= r.task_latency_p99_s
    assert results[0].ratio == 1.0 and results[1].ratio > 0
    text = table("coral", "ample", results)
    assert "prefix_priority" in text and "hit" in text
