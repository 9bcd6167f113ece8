"""Section ``scaling``: tokens/s as agent peers and replicas grow 1 -> 2 -> 4 -> 8 (nr); on the most
replicas (full mode), the batch barrier on the same fleet."""

from __future__ import annotations

import os
from typing import Any

import msgspec

from ..common import SimFleet
from ..harness import run_slurmgen, run_worker
from ..section import Context, Row, SectionResult
from .shared import capacity_arg


class Params(msgspec.Struct, kw_only=True):
    scaling_ks: list[int]  # peers = replicas at each point
    scaling_scale: float = 5.0  # simulator time scale of the points
    batch_at_max_scaling: bool  # also the batch barrier on the most replicas (baselines.batch_barrier_K_replicas)


class Point(msgspec.Struct, kw_only=True):
    peers: int
    replicas: int
    max_in_flight: int
    time_scale: float
    tokens_per_s: float
    efficiency: float  # tokens/s over k times the first point's per replica
    engine_busy_frac: float | None
    cores_busy: float
    sim_in_flight_mean: float
    cpu_limited: bool  # the machine's cores were 80 % busy


class Result(SectionResult, kw_only=True):
    scaling: list[Point] = msgspec.field(default_factory=list)
    barrier: dict[str, Any] | None = None  # the batch barrier on the most replicas

    def store(self, results: dict[str, Any]) -> None:
        results["scaling"] = msgspec.to_builtins(self.scaling)
        if self.barrier is not None:
            results.setdefault("baselines", {})[f"batch_barrier_{self.barrier['replicas']}_replicas"] = self.barrier


def barrier_run(ctx: Context, fleet: SimFleet, k: int, m: int, ours: dict[str, Any]) -> dict[str, Any]:
    """The batch barrier on this hardware, on the fleet of slurmgen's run ``ours``."""
    s = ctx.shared
    spec = dict(kind="batch", concurrency=4, batch=100, workflow="nr", urls=fleet.urls, dataset=ctx.dataset("nr"))
    b, _ = run_worker(f"batch-{k}", spec, fleet, warm=s.warm, window=s.window)
    return {"replicas": k, "time_scale": fleet.time_scale, "slurmgen_tokens_per_s": round(ours["tokens_per_s"], 1),
            "slurmgen_concurrency": m, "tokens_per_s": round(b["tokens_per_s"], 1),
            "ratio": round(ours["tokens_per_s"] / max(b["tokens_per_s"], 1e-9), 3),
            "sim_in_flight_mean": round(b["sim_in_flight_mean"], 1)}


def point(p: Params, k: int, m: int, res: dict[str, Any], base: float) -> Point:
    tps = res["tokens_per_s"]
    return Point(peers=k, replicas=k, max_in_flight=m, time_scale=p.scaling_scale, tokens_per_s=round(tps, 1),
                 efficiency=round(tps / (k * base), 3), engine_busy_frac=res["engine_busy_frac"],
                 cores_busy=res["cores_busy"], sim_in_flight_mean=round(res["sim_in_flight_mean"], 1),
                 cpu_limited=res["cores_busy"] > 0.8 * (os.cpu_count() or 1))


def rows(r: dict[str, Any]) -> list[Row]:
    return [(f"scaling k={pt['peers']} peers+replicas (tokens/s, efficiency)",
             f"{pt['tokens_per_s']:.0f}, {pt['efficiency']:.2f}" + (" CPU-bound" if pt["cpu_limited"] else ""),
             "near-linear") for pt in r.get("scaling", [])]


class Scaling:
    name = "scaling"
    opt_in = False
    quick = Params(scaling_ks=[1, 2], batch_at_max_scaling=False)
    full = Params(scaling_ks=[1, 2, 4, 8], batch_at_max_scaling=True)
    table = ((80, rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        s, out = ctx.shared, Result()
        base = None
        for k in p.scaling_ks:
            m = s.per_replica * k
            with SimFleet(k, "nr", time_scale=p.scaling_scale) as fleet:
                res, _ = run_slurmgen(f"scaling-{k}", ctx.out, "nr", fleet, peers=k, max_in_flight=m, trials=1,
                                      dataset=ctx.dataset("nr"), warm=s.warm, window=s.window, curve_on=ctx.curve_on,
                                      spill=ctx.spill, extra=[capacity_arg(m)])
                if k == max(p.scaling_ks) and p.batch_at_max_scaling:
                    out.barrier = barrier_run(ctx, fleet, k, m, res)
            base = base or res["tokens_per_s"] / k
            out.scaling.append(point(p, k, m, res, base))
            ctx.publish(out)
        return out
