"""Section ``spill``: bytes on the wire with and without spill (the peers' ``bytes_*_sent`` counters),
and tokens/s, on 4-turn Coral."""

from __future__ import annotations

from typing import Any

import msgspec

from ..common import SimFleet, log
from ..harness import run_slurmgen
from ..section import Context, Row, SectionResult
from .fmt import fmt
from .shared import CORAL_4_ARGS, capacity_arg

NOTE = ("bytes = every bytes_*_sent counter of every peer (task messages, credits, holds, blob fetches) "
        "over LLM calls answered; whole run, time-boxed")


class Params(msgspec.Struct, kw_only=True):
    """No knob of its own (the shared ones)."""


class Pending(msgspec.Struct, kw_only=True):
    status: str = "pending"
    why: str = "the peers count no bytes on the wire (no bytes_*_sent counter in stats-peer-*.json)"


class Measured(msgspec.Struct, kw_only=True):
    status: str = "measured"
    workflow: str = "coral"
    max_turns: int = 4
    bytes_per_llm_call_without: int
    bytes_per_llm_call_with: int
    ratio: float
    tokens_per_s_without: float
    tokens_per_s_with: float
    tokens_per_s_ratio: float
    tokens_per_s_repeats: dict[str, list[float]]
    sim_in_flight_mean: dict[str, float]
    wire: dict[str, dict[str, Any]]  # off / on -> ``wire_bytes``
    note: str = NOTE


class Result(SectionResult, kw_only=True):
    spill: Pending | Measured


def wire_bytes(peer_stats: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    calls = 0
    for s in peer_stats:
        for k, v in s.get("received", {}).items():
            if k.startswith("bytes_"):
                by_kind[k] = by_kind.get(k, 0) + int(v)
        calls += sum(int(e.get("ok", 0)) for e in s.get("llm", {}).values())
    return {"bytes": sum(by_kind.values()), "by_kind": by_kind, "llm_calls": calls}


def interleaved(ctx: Context) -> tuple[dict[str, dict[str, Any]], dict[str, list[float]]]:
    """Spill off and on, alternating: each side's last run (tokens/s the mean) and its tokens/s per repeat."""
    s = ctx.shared
    m = s.per_replica * s.replicas
    runs: dict[str, dict[str, Any]] = {}
    tps: dict[str, list[float]] = {"off": [], "on": []}
    with SimFleet(s.replicas, "coral", time_scale=s.scale) as fleet:
        for i in range(s.repeats):
            for key in ("off", "on"):
                res, _ = run_slurmgen(f"spill-{key}-{i}", ctx.out, "coral", fleet, peers=s.peers, max_in_flight=m,
                                      trials=1, warm=s.warm, window=s.window, curve_on=ctx.curve_on,
                                      spill=key == "on", dataset=ctx.dataset("coral"),
                                      extra=[*CORAL_4_ARGS, capacity_arg(m)])
                runs[key] = res
                tps[key].append(res["tokens_per_s"])
    for key in runs:
        runs[key]["tokens_per_s"] = sum(tps[key]) / len(tps[key])
    return runs, tps


def measured(runs: dict[str, dict[str, Any]], tps: dict[str, list[float]], wire: dict[str, Any]) -> Measured:
    per_call = {k: w["bytes"] / max(w["llm_calls"], 1) for k, w in wire.items()}
    return Measured(
        bytes_per_llm_call_without=round(per_call["off"]), bytes_per_llm_call_with=round(per_call["on"]),
        ratio=round(per_call["on"] / max(per_call["off"], 1e-9), 4),
        tokens_per_s_without=round(runs["off"]["tokens_per_s"], 1),
        tokens_per_s_with=round(runs["on"]["tokens_per_s"], 1),
        tokens_per_s_ratio=round(runs["on"]["tokens_per_s"] / max(runs["off"]["tokens_per_s"], 1e-9), 4),
        tokens_per_s_repeats={k: [round(x, 1) for x in v] for k, v in tps.items()},
        sim_in_flight_mean={k: round(v["sim_in_flight_mean"], 1) for k, v in runs.items()}, wire=wire)


def rows(r: dict[str, Any]) -> list[Row]:
    sp = r.get("spill", {})
    return [("spill: bytes with / without", sp.get("status", "n/a") if "ratio" not in sp else fmt(sp["ratio"]),
             "<= 0.8")]


class Spill:
    name = "spill"
    opt_in = False
    quick = Params()
    full = Params()
    table = ((120, rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        runs, tps = interleaved(ctx)
        wire = {k: wire_bytes(v["peer_stats"]) for k, v in runs.items()}
        if not any(w["bytes"] for w in wire.values()):
            return Result(spill=Pending())
        out = measured(runs, tps, wire)
        log(f"spill: {out.ratio} of the bytes per LLM call, {out.tokens_per_s_ratio} of the tokens/s")
        return Result(spill=out)
