"""The batch barrier on multi-turn workloads (Coral): batches of conversations, each batch
waiting for its longest conversation (``runners.py`` kind ``batch``), on the saturation
section's replicas right after slurmgen's runs there; slurmgen ÷ barrier per workload.

On nr (one prefill-heavy call chain per row) the barrier costs little; on multi-turn
work a batch of 100 conversations runs as long as its longest one, and the replicas
idle while the batch's tail finishes: that is the cost measured here.
"""

from __future__ import annotations

from typing import Any

from .common import SimFleet, log
from .harness import run_slurmgen, run_worker

BATCH, BATCHES = 100, 4  # as the nr baseline: 4 batches of 100 rows in flight (Ray Data style)
# barrier_default_turns: also Coral with its default max_turns (20; about a fifth of the conversations
# run to it: the long tail a batch waits for), slurmgen and the barrier on a fresh pair of runs,
# each window at least barrier_window_s (a batch must end inside it for its tail to count)
QUICK: dict[str, Any] = dict(barrier_default_turns=False, barrier_window_s=30.0)
FULL: dict[str, Any] = dict(barrier_default_turns=True, barrier_window_s=60.0)


def multi_turn(bench: Any, workflow: str, fleet: SimFleet, m: int, runs: dict[str, Any], peers: int,
               dataset: str, overrides: dict[str, Any] | None, args: list[str]) -> None:
    p = bench.p
    entry = _compare(bench, workflow, fleet, m, runs["slurmgen"], peers, dataset, overrides, args, p["window"])
    bench.results.setdefault("barrier", {})[workflow] = entry
    log(f"barrier {workflow}: slurmgen / batch barrier = {entry['ratio']}")
    if workflow == "coral" and p["barrier_default_turns"] and overrides:
        window = max(p["window"], p["barrier_window_s"])
        ours, _ = run_slurmgen(f"{workflow}-default-turns-slurmgen", bench.out, workflow, fleet, peers=peers,
                               max_in_flight=m, trials=1, warm=p["warm"], window=window, curve_on=bench.curve_on,
                               extra=[f"run.peer_capacity={max(512, m)}"], dataset=dataset)
        key = f"{workflow}_default_turns"
        entry = _compare(bench, key, fleet, m, ours, peers, dataset, None, [], window, workflow=workflow)
        bench.results["barrier"][key] = entry
        log(f"barrier {key}: slurmgen / batch barrier = {entry['ratio']}")


def _compare(bench: Any, name: str, fleet: SimFleet, m: int, ours_run: dict[str, Any], peers: int, dataset: str,
             overrides: dict[str, Any] | None, args: list[str], window: float, workflow: str = "") -> dict[str, Any]:
    p = bench.p
    workflow = workflow or name
    spec = dict(kind="batch", workflow=workflow, urls=fleet.urls, dataset=dataset, concurrency=BATCHES,
                batch=BATCH, workflow_overrides=overrides)
    batch, _ = run_worker(f"{name}-batch", spec, fleet, warm=p["warm"], window=window)
    runs = {"slurmgen": ours_run}
    ours = ours_run["tokens_per_s"]
    entry: dict[str, Any] = {
        "workflow": workflow, "overrides": overrides or {}, "replicas": fleet.n, "time_scale": fleet.time_scale,
        "batch": BATCH, "batches_in_flight": BATCHES,
        "slurmgen_tokens_per_s": round(ours, 1), "slurmgen_concurrency": m,
        "tokens_per_s": round(batch["tokens_per_s"], 1), "ratio": round(ours / max(batch["tokens_per_s"], 1e-9), 3),
        "generation_ratio": round(ours_run["generation_tokens_per_s"] / max(batch["generation_tokens_per_s"], 1e-9), 3),
        "window_s": {"slurmgen": ours_run["window_s"], "batch": batch["window_s"]},
        "sim_in_flight_mean": {"slurmgen": round(runs["slurmgen"]["sim_in_flight_mean"], 1),
                               "batch": round(batch["sim_in_flight_mean"], 1)},
        "engine_busy_frac": {"slurmgen": runs["slurmgen"]["engine_busy_frac"], "batch": batch["engine_busy_frac"]},
    }
    if p["equal_concurrency"]:  # slurmgen held to the barrier's 400 conversations: the barrier's cost alone
        eq, _ = run_slurmgen(f"{name}-slurmgen-{BATCH * BATCHES}", bench.out, workflow, fleet, peers=peers,
                             max_in_flight=BATCH * BATCHES, trials=1, warm=p["warm"], window=window,
                             curve_on=bench.curve_on, extra=args, dataset=dataset)
        entry["equal_concurrency"] = {"slurmgen_tokens_per_s": round(eq["tokens_per_s"], 1),
                                      "ratio": round(eq["tokens_per_s"] / max(batch["tokens_per_s"], 1e-9), 3)}
    return entry


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for wf, e in (r.get("barrier") or {}).items():
        rows.append((f"slurmgen ÷ batch barrier on {wf} ({e['batch']} x {e['batches_in_flight']})",
                     f"{e['ratio']:.2f}x ({e['tokens_per_s']:.0f} tok/s"
                     + (f"; decode {e['generation_ratio']:.2f}x)" if "generation_ratio" in e else ")"),
                     ">= 2"))
        if "equal_concurrency" in e:
            rows.append((f"  the same, slurmgen at {e['batch'] * e['batches_in_flight']} conversations",
                         f"{e['equal_concurrency']['ratio']:.2f}x", ""))
    return rows
