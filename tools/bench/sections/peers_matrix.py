"""Section ``peers_matrix`` (opt-in): Matrix itself (its own venv, its Coral flow, a local Ray head) and
slurmgen on the same replicas, same concurrency, one after the other (``../peer_matrix.py`` drives
Matrix); their figures and ratios under ``peers.matrix``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from ..common import SimFleet, bench_dataset, loadavg, log
from ..peer_matrix import count_lines, ensure_venv, pin_fleet, run_matrix, run_slurmgen_side
from ..section import Context, Row, SectionResult

TARGET_CPU_RATIO = 50.0  # slurmgen's CPU per LLM call ≤ 1/50 of Matrix's (printed, never asserted)
WORKFLOW = ("coral, max_turns=4 (Matrix: orchestrator.max_turns=4, its matcher's rated turns; slurmgen: "
            "workflow.max_turns=4)")
PINNING = ("slurmgen: started from a thread pinned to system_cpus (its tree inherits it); Matrix: Ray started on "
           "every CPU, then each process of its tree set to system_cpus once the head is up (before the window); "
           "the replicas set to sim_cpus; the bench's sampler thread shares system_cpus; see each system's "
           "'affinity' (CPUs seen per process kind over the run)")


class Params(msgspec.Struct, kw_only=True):
    matrix_concurrency: int  # tasks in flight in each system
    matrix_replicas: int = 2  # simulator replicas
    matrix_scale: float = 20.0  # simulator time scale
    matrix_warm: float  # s from the first token to the window (Ray's start is not in it)
    matrix_window: float  # s measured
    matrix_system_cpus: list[int] = msgspec.field(default_factory=lambda: [0])  # each system's CPUs
    matrix_sim_cpus: list[int] = msgspec.field(default_factory=lambda: [1])  # the replicas' CPUs
    matrix_rows: int  # coral rows (enough that slurmgen does not run out before its window ends)


class Result(SectionResult, kw_only=True):
    matrix: dict[str, Any]  # results["peers"]["matrix"]

    def store(self, results: dict[str, Any]) -> None:
        results.setdefault("peers", {})["matrix"] = self.matrix


def compare(m: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    """Matrix's figures over slurmgen's, logged; the 1/50 CPU target is printed, never asserted."""
    for side in (m, s):
        if side["ran_out"] or not side["cpu_s"]:
            log(f"peers_matrix: warning: {side['system']} ran out of rows or left no CPU figure in its window "
                f"(ran_out={side['ran_out']}, cpu_s={side['cpu_s']}): raise matrix_rows")
    ratio = m["cpu_ms_per_llm_call"] / max(s["cpu_ms_per_llm_call"], 1e-9)
    log(f"peers_matrix: CPU per LLM call Matrix {m['cpu_ms_per_llm_call']:.2f} ms, slurmgen "
        f"{s['cpu_ms_per_llm_call']:.3f} ms: {ratio:.1f}x (target >= {TARGET_CPU_RATIO:.0f}x); tokens/s Matrix "
        f"{m['tokens_per_s']:.0f}, slurmgen {s['tokens_per_s']:.0f}; load {loadavg()}")
    return {"cpu_per_call_matrix_over_slurmgen": round(ratio, 2),
            "tokens_per_s_slurmgen_over_matrix": round(s["tokens_per_s"] / max(m["tokens_per_s"], 1e-9), 3),
            "target_cpu_ratio": TARGET_CPU_RATIO, "target_met": ratio >= TARGET_CPU_RATIO}


def both(ctx: Context, p: Params, dataset: str, res: dict[str, Any]) -> None:
    """Matrix, then slurmgen, on one fleet, into ``res``."""
    with SimFleet(p.matrix_replicas, "coral", time_scale=p.matrix_scale) as fleet:
        res["pinning"] = {"system_cpus": p.matrix_system_cpus, "sim_cpus": p.matrix_sim_cpus,
                          "sim_affinity": pin_fleet(fleet, p.matrix_sim_cpus), "how": PINNING}
        res["matrix"] = run_matrix("peers-matrix", ctx.out, fleet, dataset=dataset, rows=count_lines(Path(dataset)),
                                   concurrency=p.matrix_concurrency, max_turns=4, warm=p.matrix_warm,
                                   window=p.matrix_window, cpus=p.matrix_system_cpus)
        res["load_avg"]["between"] = loadavg()
        res["slurmgen"] = run_slurmgen_side("peers-matrix-slurmgen", ctx.out, fleet, dataset=dataset,
                                            concurrency=p.matrix_concurrency, peers=ctx.shared.peers,
                                            warm=p.matrix_warm, window=p.matrix_window, cpus=p.matrix_system_cpus,
                                            curve_on=ctx.curve_on, spill=ctx.spill)


def rows(r: dict[str, Any]) -> list[Row]:
    """Rows of the printed table (the CPU target printed, never asserted)."""
    m = (r.get("peers") or {}).get("matrix") or {}
    if not m.get("ratios"):
        return []
    out = [(f"Matrix ÷ slurmgen, CPU per LLM call ({m['workflow'].split(' (')[0]}, {m['concurrency']} tasks)",
            f"{m['ratios']['cpu_per_call_matrix_over_slurmgen']:.1f}x", ">= 50")]
    for side in ("slurmgen", "matrix"):
        e = m[side]
        out.append((f"  {side}: tok/s, calls/s, CPU ms/call, in flight, RSS MiB, tasks",
                    f"{e['tokens_per_s']:.0f}, {e['llm_calls_per_s']:.1f}, {e['cpu_ms_per_llm_call']:.2f}, "
                    f"{e['sim_in_flight_mean']:.0f}, {e['peak_rss_mb']:.0f}, {e['tasks_finished']}", ""))
    return out


class PeersMatrix:
    name = "peers_matrix"
    opt_in = True
    quick = Params(matrix_concurrency=128, matrix_warm=30.0, matrix_window=45.0, matrix_rows=15000)
    full = Params(matrix_concurrency=256, matrix_warm=40.0, matrix_window=90.0, matrix_rows=60000)
    table = ((100, rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        """Matrix, then slurmgen, on one fleet; the figures of both and their ratios."""
        dataset = str(bench_dataset("coral", p.matrix_rows))
        res: dict[str, Any] = {"concurrency": p.matrix_concurrency, "replicas": p.matrix_replicas,
                               "time_scale": p.matrix_scale, "load_avg": {"start": loadavg()}, "workflow": WORKFLOW}
        ensure_venv()
        both(ctx, p, dataset, res)
        res["load_avg"]["end"] = loadavg()
        res["ratios"] = compare(res["matrix"], res["slurmgen"])
        return Result(matrix=res)
