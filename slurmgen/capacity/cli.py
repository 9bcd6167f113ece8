"""``slurmgen plan CALIBRATION_RUN --records N --hours H [--output json]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from slurmgen.capacity.calibration import load
from slurmgen.capacity.sizing import Plan, size
from slurmgen.errors import SlurmgenError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slurmgen plan", description="Size a run from a finished (calibration) run "
                                "of the same workflow and config: replicas per LLM pool, peers, tool-pool "
                                "members, GPUs, expected finish, and the overrides to run it.")
    p.add_argument("calibration", type=Path, help="the run directory of a finished run (its summary.json)")
    p.add_argument("--records", type=int, required=True, help="records the run must write")
    p.add_argument("--hours", type=float, required=True, help="wall-clock hours it may take")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node, to count GPU nodes (default 8)")
    p.add_argument("--gpu-budget", type=float, default=0.0, help="GPU-hours available (0: no limit)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        plan = size(load(args.calibration), args.records, args.hours, args.gpus_per_node, args.gpu_budget)
    except SlurmgenError as exc:
        print(f"slurmgen plan: error: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(msgspec.json.format(msgspec.json.encode(plan)).decode())
    else:
        print(text(plan))
    return 0


def text(plan: Plan) -> str:
    cal = plan.calibration
    lines = [(f"calibration: {cal.records} records of {cal.workflow} in {cal.active_s:.1f} s active "
              f"({cal.records_per_s:.2f} records/s; start-up {cal.startup_s:.1f} s) from {cal.run}"),
             f"target: {plan.records} records in {plan.hours:g} h", "",
             f"{'pool':16} {'replicas':>8} {'GPUs':>5} {'tokens/s':>10}"]
    lines += [f"{p.pool:16} {p.replicas:8d} {p.gpus:5d} {p.tokens_per_s:10.0f}" for p in plan.pools]
    budget = "  OVER THE GPU BUDGET" if plan.over_budget else ""
    lines += ["", (f"peers {plan.peers}, tool-pool members {plan.toolpool_size}, "
                   f"GPUs {plan.gpus} on {plan.gpu_nodes} nodes of {plan.gpus_per_node}"),
              (f"expected: {plan.records_per_s:.2f} records/s, finish after {plan.expected_finish_h:.2f} h "
               f"({plan.expected_finish_h * 3600:.0f} s), "
               f"{plan.gpu_hours:.1f} GPU-hours{budget}"),
              "", "run it with:", "  python -m slurmgen " + " ".join(plan.overrides)]
    return "\n".join(lines)
