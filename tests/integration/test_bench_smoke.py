"""Smoke test of the throughput benchmark: ``python tools/bench.py --quick`` runs end to end.

It checks that results.json is written with every key and that the figures are numbers.
It asserts no timing and no target: the machine running the tests is shared and the
numbers are the benchmark's to report, not the test's to judge.
"""

import json
import math
import subprocess
import sys
from numbers import Number
from pathlib import Path

import pytest

from tests.conftest import REPO

SCALARS = ("cpu_us_per_hop", "cpu_us_per_llm_call", "cpu_ms_per_llm_call_all", "server_max_in_flight",
           "max_in_flight", "bytes_per_inflight_task")
BASELINES = ("central_single_loop", "batch_barrier", "thread_pool_default", "thread_pool_best")


def is_number(v: object) -> bool:
    return isinstance(v, Number) and not isinstance(v, bool) and math.isfinite(v)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_benchmark_writes_every_key(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "bench.py"), "--quick", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads((out / "results.json").read_text())
    assert results["section_errors"] == {}, results["section_errors"]
    assert results["curve"] is True and results["spill_in_runs"] == "default"  # the run defaults
    cost = results["curve_cost"]
    assert is_number(cost["cpu_ms_per_llm_call_curve_on"]) and is_number(cost["cpu_ms_per_llm_call_curve_off"])
    assert results["cpu"]["curve"] is True
    for key in SCALARS:
        assert is_number(results[key]), (key, results[key])
    saturation = results["saturation"]
    assert {"nr", "coral"} <= set(saturation)
    for workflow, entry in saturation.items():
        for key in ("ratio", "slurmgen_tokens_per_s", "ideal_tokens_per_s"):
            assert is_number(entry[key]), (workflow, key, entry[key])
    pools = results["pools"]["by_pool"]
    assert set(pools) == {"teacher", "default"}  # the teacher's 70B pool and everyone else's 8B
    for pool, entry in pools.items():
        for key in ("ratio", "slurmgen_tokens_per_s", "ideal_tokens_per_s", "slurmgen_mean_latency_s",
                    "ideal_mean_latency_s"):
            assert is_number(entry[key]), (pool, key, entry[key])
    baselines = results["baselines"]
    for name in BASELINES:
        assert is_number(baselines[name]["tokens_per_s"]) and is_number(baselines[name]["ratio"]), name
    assert results["scaling"] and all(is_number(p["tokens_per_s"]) and is_number(p["peers"])
                                      for p in results["scaling"])
    assert "status" in results["spill"] or is_number(results["spill"].get("ratio"))
    machine = results["machine"]
    for key in ("cpu_model", "cores", "python", "slurmgen_commit"):
        assert machine[key], key
    assert "metric" in proc.stdout  # the table was printed
