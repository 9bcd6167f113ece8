"""``slurmgen plan CALIBRATION_RUN --records N --hours H [--output json]``."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import msgspec

from slurmgen.capacity.calibration import load
from slurmgen.capacity.fit import Fit, check_plan
from slurmgen.capacity.rates import BOUNDS
from slurmgen.capacity.sizing import Plan, size
from slurmgen.errors import SlurmgenError


class PlanDoc(msgspec.Struct, kw_only=True):
    """What ``--output json`` prints: the plan, and the sinfo check when it ran."""

    plan: Plan
    fits: Fit | None = None  # the sinfo check, when it ran


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slurmgen plan", description="Size a run from a finished (calibration) run "
                                "of the same workflow and config: replicas per LLM pool, peers, tool-pool "
                                "members, GPUs, expected wall time and what bounds it, and the overrides to run it; "
                                "checked against sinfo's nodes when sinfo is found.")
    p.add_argument("calibration", type=Path, help="the run directory of a finished run (its summary.json)")
    p.add_argument("--records", type=int, required=True, help="records the run must write")
    p.add_argument("--hours", type=float, required=True, help="wall-clock hours it may take")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node, to count GPU nodes (default 8)")
    p.add_argument("--gpu-budget", type=float, default=0.0, help="GPU-hours available (0: no limit)")
    nodes = p.add_mutually_exclusive_group()
    nodes.add_argument("--nodes-from-sinfo", action="store_true", help="check the plan against the partition's "
                       "nodes (sinfo); an error if sinfo is not found (default: checked when sinfo is found)")
    nodes.add_argument("--no-sinfo", action="store_true", help="do not check against sinfo")
    p.add_argument("--output", choices=("text", "json"), default="text")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        plan = size(load(args.calibration), args.records, args.hours, args.gpus_per_node, args.gpu_budget)
        fits = _check(plan, args)
    except SlurmgenError as exc:
        print(f"slurmgen plan: error: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(msgspec.json.format(msgspec.json.encode(PlanDoc(plan=plan, fits=fits))).decode())
    else:
        print(text(plan, fits))
    if fits is not None and fits.short:
        print("slurmgen plan: error: the plan does not fit partition " + fits.partition + ":\n  "
              + "\n  ".join(fits.short), file=sys.stderr)
        return 2
    return 0


def _check(plan: Plan, args: argparse.Namespace) -> Fit | None:
    if args.no_sinfo or not (args.nodes_from_sinfo or shutil.which("sinfo")):
        return None
    if not shutil.which("sinfo"):
        raise SlurmgenError("--nodes-from-sinfo but sinfo is not found: run it on the cluster's login node")
    return check_plan(plan)


def text(plan: Plan, fits: Fit | None = None) -> str:
    cal, ph = plan.calibration, plan.calibration.phases
    lines = [(f"calibration: {cal.records} records of {cal.workflow} in {cal.wall_s:.1f} s from {cal.run}: steady "
              f"{cal.records_per_s:.2f} records/s ({cal.steady.window_records} records over {cal.steady.window_s:.1f} "
              f"s, {cal.steady.in_flight:.0f} in flight of run.max_in_flight={cal.max_in_flight}), bound by "
              f"{BOUNDS[cal.bound]}"),
             (f"  fixed: launch {ph.launch_s:.1f} s + start-up {ph.startup_s:.1f} s + ramp {ph.ramp_s:.1f} s + stop "
              f"{ph.stop_s:.1f} s + report {ph.report_s:.1f} s = {ph.fixed_s:.1f} s"),
             f"target: {plan.records} records in {plan.hours:g} h" + (
                 f" ({plan.records_planned} planned: dataset.limit x run.trials)"
                 if plan.records_planned != plan.records else ""), "",
             f"{'pool':16} {'replicas':>8} {'GPUs':>5} {'tokens/s':>10}"]
    lines += [f"{p.pool:16} {p.replicas:8d} {p.gpus:5d} {p.tokens_per_s:10.0f}" for p in plan.pools]
    budget = "  OVER THE GPU BUDGET" if plan.over_budget else ""
    lines += ["", (f"peers {plan.peers}, run.max_in_flight {plan.max_in_flight}, tool-pool members "
                   f"{plan.toolpool_size}, GPUs {plan.gpus} on {plan.gpu_nodes} nodes of {plan.gpus_per_node}"),
              (f"expected: {plan.records_per_s:.2f} records/s, bound by {plan.bound_text}; wall time "
               f"{plan.expected_wall_s:.0f} s = {plan.fixed_s:.0f} s fixed + {plan.steady_s:.0f} s steady "
               f"({plan.expected_finish_h:.2f} h), {plan.gpu_hours:.1f} GPU-hours{budget}")]
    lines += _fit_lines(fits)
    lines += ["", "run it with (the calibration's own overrides too):", "  python -m slurmgen " + " ".join(plan.overrides)]
    return "\n".join(lines)


def _fit_lines(fits: Fit | None) -> list[str]:
    if fits is None:
        return ["sinfo: not checked (no sinfo here, or --no-sinfo)"]
    have = ", ".join(f"{fits.asked.get(k, 0)} of {v} {k}" for k, v in fits.have.items())
    head = f"sinfo: partition {fits.partition}, {fits.nodes} nodes: the plan's jobs take {have}"
    if not fits.short:
        return [f"{head}; they fit at once on {fits.nodes_used} nodes"]
    return [f"{head}; DOES NOT FIT:", *(f"  {line}" for line in fits.short)]
