"""Pieces several sections use: the 4-turn Coral run, the recorded request stream, small reductions."""

from __future__ import annotations

from typing import Any

from ..common import Fleet, SimFleet, SimFleets
from ..harness import run_worker
from ..section import Context

CORAL_4: dict[str, Any] = {"max_turns": 4}  # the 4-turn Coral conversation of the issue
CORAL_4_ARGS = ["workflow.max_turns=4"]


def record(ctx: Context, workflow: str, overrides: dict[str, Any] | None, models: dict[str, str] | None = None,
           tag: str = "") -> tuple[str, dict[str, Any]]:
    """The request stream: the workflow's first tasks run once against a zero-latency replica (one per
    pool of ``models``, pool -> served model: each request is recorded with its pool)."""
    tag = tag or workflow
    chains = ctx.out / "runs" / f"chains-{tag}.jsonl"
    chains.parent.mkdir(parents=True, exist_ok=True)
    fleet: Fleet = SimFleet(1, workflow, profile="zero", time_scale=0)
    if models:
        fleet = SimFleets({pool: SimFleet(1, workflow, profile="zero", time_scale=0, model=model)
                           for pool, model in models.items()})
    with fleet:
        spec = dict(kind="record", workflow=workflow, urls=fleet.urls, concurrency=64,
                    dataset=ctx.dataset(workflow), max_tasks=ctx.shared.record_tasks,
                    workflow_overrides=overrides, chains=str(chains), **(pool_spec(fleet) if models else {}))
        res, _ = run_worker(f"record-{tag}", spec, fleet, warm=0, window=0, timebox=False)
    return str(chains), res.get("worker", {})


def pool_spec(fleet: Fleet) -> dict[str, Any]:
    """A runner spec's pools: each pool's replica URLs and served model."""
    pools = fleet.pools()
    return {"pools": {k: f.urls for k, f in pools.items()}, "models": {k: f.model for k, f in pools.items()}}


def slim(res: dict[str, Any]) -> dict[str, Any]:
    """A run's figures without its peers' stats, floats to 3 places."""
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items() if k != "peer_stats"}


def round_or_none(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def hops_per_call(peer_stats: list[dict[str, Any]], calls: float) -> float | None:
    hops = sum(sum(v for k, v in s.get("received", {}).items() if k in ("orch", "orch_local", "orch_home"))
               for s in peer_stats)
    return round(hops / calls, 3) if calls else None


def capacity_arg(m: int) -> str:
    """run.peer_capacity for ``m`` tasks in flight (at least the default 512)."""
    return f"run.peer_capacity={max(512, m)}"
