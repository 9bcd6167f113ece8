"""Section ``pools``: two LLM pools in one run (coral 4-turn, the teacher on a 70B fleet, every other
role on an 8B fleet): each pool's tokens/s, slurmgen's over the ideal client's, and its mean request
latency at the replicas."""

from __future__ import annotations

from typing import Any

import msgspec

from ..common import DEFAULT_POOL, SimFleet, SimFleets, log
from ..harness import run_slurmgen, run_worker
from ..section import Context, Row, SectionResult
from .fmt import fmt
from .shared import CORAL_4, CORAL_4_ARGS, capacity_arg, pool_spec, record, round_or_none, slim

# configs/llms/teacher_student.yaml's two models (pool -> served model, latency profile)
# and its role mapping (workflow.role_llm: the teacher on its own pool, every other role on the default)
POOL_FLEETS = {"teacher": ("sim-llama-3.1-70b", "4xa100-llama3.1-70b"),
               DEFAULT_POOL: ("sim-llama-3.1-8b", "a100-llama3.1-8b")}
POOL_ROLES = {"teacher": "teacher"}
NOTE = ("tokens/s and latency from each pool's replicas' own counters over the window; latency = "
        "vllm:e2e_request_latency_seconds (arrival at the replica to its last token, wall seconds); "
        "means over the interleaved repeats")


def _default_replicas() -> dict[str, int]:
    return {"teacher": 1, DEFAULT_POOL: 1}


class Params(msgspec.Struct, kw_only=True):
    pool_replicas: dict[str, int] = msgspec.field(default_factory=_default_replicas)  # simulator replicas per pool


class Pools(msgspec.Struct, kw_only=True):
    workflow: str
    max_turns: int
    role_llm: dict[str, str]
    concurrency: int
    peers: int
    time_scale: float
    curve: bool
    spill_in_runs: str
    recorded: dict[str, Any]
    by_pool: dict[str, dict[str, Any]]  # pool -> ``pool_entry``
    ratio_min: float
    ratio_all_pools: float
    runs: dict[str, dict[str, Any]]
    note: str = NOTE


class Result(SectionResult, kw_only=True):
    pools: Pools


def pool_entry(pool: str, reps: dict[str, list[dict[str, Any]]], replicas: int) -> dict[str, Any]:
    """One pool's figures: slurmgen's and the ideal client's, each the mean of its repeats."""

    def mean(system: str, key: str) -> float | None:
        vals = [x["by_pool"][pool][key] for x in reps[system] if x["by_pool"][pool][key] is not None]
        return sum(vals) / len(vals) if vals else None

    ours, ideal = mean("slurmgen", "tokens_per_s") or 0.0, mean("ideal", "tokens_per_s") or 0.0
    lat = {k: mean(k, "mean_latency_s") for k in reps}
    model, profile = POOL_FLEETS[pool]
    return {
        "model": model, "profile": profile, "replicas": replicas,
        "ratio": round(ours / max(ideal, 1e-9), 4),
        "slurmgen_tokens_per_s": round(ours, 1), "ideal_tokens_per_s": round(ideal, 1),
        "slurmgen_mean_latency_s": round_or_none(lat["slurmgen"], 4),
        "ideal_mean_latency_s": round_or_none(lat["ideal"], 4),
        "requests_per_s": {k: round_or_none(mean(k, "requests_per_s"), 1) for k in reps},
        "engine_busy_frac": {k: round_or_none(mean(k, "engine_busy_frac"), 3) for k in reps},
        "in_flight_mean": {k: round_or_none(mean(k, "in_flight_mean"), 1) for k in reps},
        "repeats": {k: [round(x["by_pool"][pool]["tokens_per_s"], 1) for x in v] for k, v in reps.items()},
    }


def interleaved(ctx: Context, p: Params, chains: str, m: int) -> dict[str, list[dict[str, Any]]]:
    s = ctx.shared
    args = [*CORAL_4_ARGS, *(f"workflow.role_llm.{role}={pool}" for role, pool in POOL_ROLES.items()), capacity_arg(m)]
    fleets = SimFleets({pool: SimFleet(p.pool_replicas[pool], "coral", profile=profile, model=model,
                                       time_scale=s.scale) for pool, (model, profile) in POOL_FLEETS.items()})
    reps: dict[str, list[dict[str, Any]]] = {"ideal": [], "slurmgen": []}
    with fleets:
        for i in range(s.repeats):  # interleaved, as the saturation section
            spec = dict(kind="ideal", workflow="coral", urls=fleets.urls, concurrency=m, chains=chains,
                        **pool_spec(fleets))
            res, _ = run_worker(f"pools-ideal-{i}", spec, fleets, warm=s.warm, window=s.window)
            reps["ideal"].append(res)
            res, _ = run_slurmgen(f"pools-slurmgen-{i}", ctx.out, "coral", fleets, peers=s.peers, max_in_flight=m,
                                  trials=1, warm=s.warm, window=s.window, curve_on=ctx.curve_on, spill=ctx.spill,
                                  extra=args, dataset=ctx.dataset("coral"))
            reps["slurmgen"].append(res)
    return reps


def rows(r: dict[str, Any]) -> list[Row]:
    return [(f"saturation, pool {pool} ({e['model']}) (slurmgen / ideal)",
             f"{fmt(e['ratio'], '.3f')} ({fmt(e['slurmgen_tokens_per_s'], '.0f')} / "
             f"{fmt(e['ideal_tokens_per_s'], '.0f')} tok/s; latency {fmt(e['slurmgen_mean_latency_s'], '.2f')}"
             f" / {fmt(e['ideal_mean_latency_s'], '.2f')} s)", ">= 0.95")
            for pool, e in (r.get("pools") or {}).get("by_pool", {}).items()]


class PoolsSection:
    name = "pools"
    opt_in = False
    quick = Params()
    full = Params()
    table = ((20, rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        s = ctx.shared
        models = {pool: model for pool, (model, _) in POOL_FLEETS.items()}
        chains, recorded = record(ctx, "coral", {**CORAL_4, "role_llm": POOL_ROLES}, models, tag="coral-pools")
        m = s.per_replica * sum(p.pool_replicas.values())
        reps = interleaved(ctx, p, chains, m)
        by_pool = {pool: pool_entry(pool, reps, p.pool_replicas[pool]) for pool in POOL_FLEETS}
        total = {k: sum(x["tokens_per_s"] for x in v) / len(v) for k, v in reps.items()}
        for x in reps["ideal"] + reps["slurmgen"]:
            ctx.peak(x["server_max_in_flight"])
        for pool, e in by_pool.items():
            log(f"pools {pool}: {e['ratio']:.3f} ({e['slurmgen_tokens_per_s']:.0f} / {e['ideal_tokens_per_s']:.0f} "
                f"tokens/s)")
        return Result(pools=Pools(
            workflow="coral", max_turns=4, role_llm=POOL_ROLES, concurrency=m, peers=s.peers, time_scale=s.scale,
            curve=ctx.curve_on, spill_in_runs=ctx.spill_in_runs(), recorded=recorded, by_pool=by_pool,
            ratio_min=min(e["ratio"] for e in by_pool.values()),
            ratio_all_pools=round(total["slurmgen"] / max(total["ideal"], 1e-9), 4),
            runs={k: slim(v[-1]) for k, v in reps.items()}))
