"""The batch barrier on multi-turn workloads (Coral): batches of conversations, each batch
waiting for its longest conversation (``runners.py`` kind ``batch``), on the saturation
section's replicas right after slurmgen's runs there; slurmgen ÷ barrier per workload.

On nr (one prefill-heavy call chain per row) the barrier costs little; on multi-turn
work a batch of 100 conversations runs as long as its longest one, and the replicas
idle while the batch's tail finishes: that is the cost measured here. Part of the
saturation section (its knobs: ``barrier_default_turns``, ``barrier_window_s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .common import SimFleet, log
from .harness import run_slurmgen, run_worker
from .section import Context, Row

BATCH, BATCHES = 100, 4  # as the nr baseline: 4 batches of 100 rows in flight (Ray Data style)


@dataclass(frozen=True)
class Setup:
    """Where the comparison runs: the saturation runs' fleet, concurrency, peers and dataset."""

    fleet: SimFleet
    m: int
    peers: int
    dataset: str
    equal_concurrency: bool  # also slurmgen held to the barrier's 400 conversations


def multi_turn(ctx: Context, su: Setup, workflow: str, ours: dict[str, Any], overrides: dict[str, Any] | None,
               args: list[str], *, default_turns: bool, window_s: float) -> dict[str, dict[str, Any]]:
    """The barrier against slurmgen's run ``ours``; with ``default_turns`` (coral, 4 turns), also Coral
    with its default max_turns on a fresh pair of runs, each window at least ``window_s``."""
    s = ctx.shared
    out = {workflow: compare(ctx, su, workflow, ours, overrides, args, s.window)}
    log(f"barrier {workflow}: slurmgen / batch barrier = {out[workflow]['ratio']}")
    if workflow == "coral" and default_turns and overrides:
        window = max(s.window, window_s)
        mine, _ = run_slurmgen(f"{workflow}-default-turns-slurmgen", ctx.out, workflow, su.fleet, peers=su.peers,
                               max_in_flight=su.m, trials=1, warm=s.warm, window=window, curve_on=ctx.curve_on,
                               spill=ctx.spill, extra=[f"run.peer_capacity={max(512, su.m)}"], dataset=su.dataset)
        key = f"{workflow}_default_turns"
        out[key] = compare(ctx, su, key, mine, None, [], window, workflow=workflow)
        log(f"barrier {key}: slurmgen / batch barrier = {out[key]['ratio']}")
    return out


def compare(ctx: Context, su: Setup, name: str, ours_run: dict[str, Any], overrides: dict[str, Any] | None,
            args: list[str], window: float, workflow: str = "") -> dict[str, Any]:
    workflow = workflow or name
    spec = dict(kind="batch", workflow=workflow, urls=su.fleet.urls, dataset=su.dataset, concurrency=BATCHES,
                batch=BATCH, workflow_overrides=overrides)
    batch, _ = run_worker(f"{name}-batch", spec, su.fleet, warm=ctx.shared.warm, window=window)
    entry = _entry(su, workflow, overrides, ours_run, batch)
    if su.equal_concurrency:  # slurmgen held to the barrier's 400 conversations: the barrier's cost alone
        eq, _ = run_slurmgen(f"{name}-slurmgen-{BATCH * BATCHES}", ctx.out, workflow, su.fleet, peers=su.peers,
                             max_in_flight=BATCH * BATCHES, trials=1, warm=ctx.shared.warm, window=window,
                             curve_on=ctx.curve_on, spill=ctx.spill, extra=args, dataset=su.dataset)
        entry["equal_concurrency"] = {"slurmgen_tokens_per_s": round(eq["tokens_per_s"], 1),
                                      "ratio": round(eq["tokens_per_s"] / max(batch["tokens_per_s"], 1e-9), 3)}
    return entry


def _entry(su: Setup, workflow: str, overrides: dict[str, Any] | None, ours_run: dict[str, Any],
           batch: dict[str, Any]) -> dict[str, Any]:
    ours = ours_run["tokens_per_s"]
    return {
        "workflow": workflow, "overrides": overrides or {}, "replicas": su.fleet.n,
        "time_scale": su.fleet.time_scale, "batch": BATCH, "batches_in_flight": BATCHES,
        "slurmgen_tokens_per_s": round(ours, 1), "slurmgen_concurrency": su.m,
        "tokens_per_s": round(batch["tokens_per_s"], 1), "ratio": round(ours / max(batch["tokens_per_s"], 1e-9), 3),
        "generation_ratio": round(ours_run["generation_tokens_per_s"] / max(batch["generation_tokens_per_s"], 1e-9),
                                  3),
        "window_s": {"slurmgen": ours_run["window_s"], "batch": batch["window_s"]},
        "sim_in_flight_mean": {"slurmgen": round(ours_run["sim_in_flight_mean"], 1),
                               "batch": round(batch["sim_in_flight_mean"], 1)},
        "engine_busy_frac": {"slurmgen": ours_run["engine_busy_frac"], "batch": batch["engine_busy_frac"]},
    }


def table_rows(r: dict[str, Any]) -> list[Row]:
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
