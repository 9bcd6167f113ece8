"""Section ``kv``: routing and scheduling policies against the servers' KV cache (``..kv``):
coral with many turns and tau2 mock with many concurrent tasks, on replicas whose KV holds
fewer than all live conversations (tight) and on ample KV; per policy finished tasks/s,
tokens/s, prefix hit rate, preemptions, task latency p50/p99 and the ratio over
least-outstanding FCFS.

Coral's turns are cut at ``kv_coral_reply_tokens`` (before an answer's last line, so no
debate agrees early: every task runs its 30 turns): each turn adds a short reply to a long,
growing history, the shape of agentic work, where a prefix evicted between two turns costs a
prefill of the whole history. Its ample-KV run shows what the KV costs FCFS."""

from __future__ import annotations

from typing import Any

import msgspec

from slurmgen.workflow import Sampling

from ..common import log
from ..kv import KVParams, KVResult, compare, table
from ..section import Context, Row, SectionResult
from .fmt import fmt


class Params(msgspec.Struct, kw_only=True):
    kv_window: float  # s measured per policy
    # s of warm-up before it, so that the window sees a steady state, not the first wave of tasks
    # (coral's 30 turns take ~45 s under FCFS on tight KV; a tau2 mock task ~1-4 s)
    kv_coral_warm: float
    kv_tau2_warm: float
    kv_replicas: int = 2
    # lower than other sections': the modelled GPU, not the driver's or the simulators' CPU, must bind
    # (at 5 tau2's simulators were CPU-bound on 2 loaded cores; at 2 every replica was busy 100 %)
    kv_scale: float = 2.0
    kv_ample_blocks: int = 25_000  # the 8B profile's KV a replica: every live conversation fits
    # tight KV a replica: less than its live conversations hold (coral: 32 tasks x 2 conversations
    # of 1-3k tokens over 2 replicas; FCFS finishes 1.8x fewer tasks than with ample KV, quick run)
    kv_coral_tight_blocks: int = 1_500
    kv_tau2_tight_blocks: int = 1_500
    kv_coral_tasks: int = 32  # coral tasks at once (30 turns each)
    kv_coral_reply_tokens: int = 96  # a coral agent's turn at most (the default 1,024 ends most debates early)
    kv_tau2_tasks: int = 64  # tau2 mock tasks at once


class Setting(msgspec.Struct, kw_only=True):
    kv_blocks: int
    concurrency: int
    window_s: float
    policies: dict[str, KVResult]


class Result(SectionResult, kw_only=True):
    kv: dict[str, Any]  # time_scale, replicas, then workflow -> tight / ample -> Setting


def workloads(p: Params) -> dict[str, dict[str, KVParams]]:
    out: dict[str, dict[str, KVParams]] = {}
    for workflow, tasks, tight, warm in (("coral", p.kv_coral_tasks, p.kv_coral_tight_blocks, p.kv_coral_warm),
                                         ("tau2", p.kv_tau2_tasks, p.kv_tau2_tight_blocks, p.kv_tau2_warm)):
        overrides: dict[str, Any] = {}
        if workflow == "coral":
            overrides = {"max_turns": 30, "agent_sampling": Sampling(temperature=0.2, top_p=0.9,
                                                                     max_tokens=p.kv_coral_reply_tokens)}
        out[workflow] = {kv: KVParams(workflow=workflow, policy="least_outstanding", kv_blocks=blocks,
                                      replicas=p.kv_replicas, concurrency=tasks, warm_s=warm,
                                      window_s=p.kv_window, time_scale=p.kv_scale, overrides=overrides)
                         for kv, blocks in (("tight", tight), ("ample", p.kv_ample_blocks))}
    return out


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for workflow in ("coral", "tau2"):
        for kv, target in (("tight", ">= 1.5"), ("ample", ">= 0.95 of the best")):
            pol = r.get("kv", {}).get(workflow, {}).get(kv, {}).get("policies", {})
            if "prefix_priority" not in pol:
                continue
            pp, lo = pol["prefix_priority"], pol["least_outstanding"]
            best = max(p["finished_tasks_per_s"] for p in pol.values())
            value = pp["finished_tasks_per_s"] / best if kv == "ample" else pp["ratio"]
            out.append((f"kv {workflow}, {kv} KV: prefix+priority tasks/s ÷ "
                        + ("best policy" if kv == "ample" else "least-outstanding"),
                        f"{fmt(round(value, 2))} (hit {pp['prefix_hit_rate']} vs {lo['prefix_hit_rate']})", target))
    return out


class KV:
    name = "kv"
    opt_in = True  # 13 min quick (776 s measured), ~27 min full: only with --only kv (not in the CI smoke set)
    quick = Params(kv_window=30.0, kv_coral_warm=30.0, kv_tau2_warm=5.0)
    full = Params(kv_window=60.0, kv_coral_warm=60.0, kv_tau2_warm=15.0)
    table = ((125, rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        out: dict[str, Any] = {"time_scale": p.kv_scale, "replicas": p.kv_replicas}
        for workflow, settings in workloads(p).items():
            for kv, params in settings.items():
                results = compare(params)
                out.setdefault(workflow, {})[kv] = Setting(
                    kv_blocks=params.kv_blocks, concurrency=params.concurrency, window_s=params.window_s,
                    policies={r.policy: r for r in results})
                print(table(workflow, kv, results), flush=True)
                ctx.publish(Result(kv=out))
        log("kv: done")
        return Result(kv=out)
