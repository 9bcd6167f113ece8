"""Section ``cpu``: CPU of all slurmgen processes (driver, registry, peers, not the simulator) per LLM
call, on a 4-turn Coral run against zero-latency replicas; with the run's CurveZMQ setting, then
the same run with it the other way (``curve_cost``)."""

from __future__ import annotations

from typing import Any

import msgspec

from ..common import SLURMGEN_KINDS, SimFleet, log
from ..harness import run_slurmgen
from ..section import Context, Row, SectionResult
from .fmt import fmt
from .shared import CORAL_4_ARGS, hops_per_call


class Params(msgspec.Struct, kw_only=True):
    cpu_tasks: int  # coral tasks of each run (run to completion: the whole run is measured too)


class CurveCost(msgspec.Struct, kw_only=True):
    cpu_ms_per_llm_call_curve_on: float
    cpu_ms_per_llm_call_curve_off: float
    ratio_on_over_off: float
    requests_per_s_curve_on: float
    requests_per_s_curve_off: float
    note: str = "the cpu section's run twice, CurveZMQ on and off, one after the other"


class Result(SectionResult, kw_only=True):
    cpu: dict[str, Any]  # the run with the run's CurveZMQ setting (``cpu_run``)
    cpu_ms_per_llm_call_all: float
    curve_cost: CurveCost


def cpu_run(ctx: Context, p: Params, name: str, curve_on: bool) -> dict[str, Any]:
    s = ctx.shared
    with SimFleet(s.replicas, "coral", profile="zero", time_scale=0) as fleet:
        res, sampler = run_slurmgen(name, ctx.out, "coral", fleet, peers=s.peers, max_in_flight=256, trials=1,
                                    warm=0, window=0, timebox=False, curve_on=curve_on, spill=ctx.spill,
                                    dataset=ctx.dataset("coral"),
                                    extra=[*CORAL_4_ARGS, f"dataset.limit={p.cpu_tasks}"])
    cpu_win = res["cpu_s_by_kind"]
    per_call = sum(v for k, v in cpu_win.items() if k in SLURMGEN_KINDS) / max(res["requests"], 1) * 1e3
    total = sampler.total_cpu()
    total_requests = sampler.samples[-1].requests - sampler.samples[0].requests
    ctx.peak(res["server_max_in_flight"])
    log(f"cpu (curve {'on' if curve_on else 'off'}): {per_call:.3f} ms per LLM call (window)")
    return {
        "workflow": "coral", "max_turns": 4, "replicas": fleet.n, "peers": s.peers, "max_in_flight": 256,
        "curve": curve_on,
        "llm_calls_window": res["requests"], "cpu_s_window_by_kind": cpu_win,
        "cpu_ms_per_llm_call_window": round(per_call, 3),
        "llm_calls_total": total_requests, "cpu_s_total_by_kind": {k: round(v, 3) for k, v in total.items()},
        "cpu_ms_per_llm_call_total": round(sum(total.values()) / max(total_requests, 1) * 1e3, 3),
        "sim_cpu_ms_per_llm_call_window": round(res["sim_cpu_s"] / max(res["requests"], 1) * 1e3, 3),
        "requests_per_s": res["requests_per_s"], "cores_busy": res["cores_busy"],
        "hops_per_llm_call": hops_per_call(res["peer_stats"], total_requests),
        "peer_stats": res["peer_stats"],
    }


def curve_cost(on: dict[str, Any], off: dict[str, Any]) -> CurveCost:
    cost = CurveCost(
        cpu_ms_per_llm_call_curve_on=on["cpu_ms_per_llm_call_window"],
        cpu_ms_per_llm_call_curve_off=off["cpu_ms_per_llm_call_window"],
        ratio_on_over_off=round(on["cpu_ms_per_llm_call_window"] / max(off["cpu_ms_per_llm_call_window"], 1e-9), 3),
        requests_per_s_curve_on=on["requests_per_s"], requests_per_s_curve_off=off["requests_per_s"])
    log(f"curve cost: {cost.ratio_on_over_off}x CPU per LLM call with CurveZMQ on")
    return cost


def rows(r: dict[str, Any]) -> list[Row]:
    out = [("CPU per LLM call, all slurmgen processes (ms)" + (" [CurveZMQ on]" if r.get("curve") else
                                                                " [CurveZMQ off]"),
            fmt(r.get("cpu_ms_per_llm_call_all")), "<= 1.2")]
    cc = r.get("curve_cost")
    if cc:
        out.append(("  the same, CurveZMQ on / off (ms)", f"{fmt(cc['cpu_ms_per_llm_call_curve_on'])} / "
                    f"{fmt(cc['cpu_ms_per_llm_call_curve_off'])} ({fmt(cc['ratio_on_over_off'], '.2f')}x)", ""))
    return out


class Cpu:
    name = "cpu"
    opt_in = False
    quick = Params(cpu_tasks=300)
    full = Params(cpu_tasks=2400)
    table = ((40, rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        """With the run's defaults (CurveZMQ on unless --no-curve), then the same run with it the other way."""
        mine = cpu_run(ctx, p, "cpu-coral4-zero", ctx.curve_on)
        other = cpu_run(ctx, p, "cpu-coral4-zero-curve-" + ("off" if ctx.curve_on else "on"), not ctx.curve_on)
        on, off = (mine, other) if ctx.curve_on else (other, mine)
        return Result(cpu=mine, cpu_ms_per_llm_call_all=mine["cpu_ms_per_llm_call_window"],
                      curve_cost=curve_cost(on, off))
