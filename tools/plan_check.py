"""``slurmgen plan``'s prediction against a measured run; prints figures, asserts nothing.

    python tools/plan_check.py OUT_DIR [--sizes 2000 6000] [--calibration-records 1000 | --calibration RUN]
                               [--hours H] [-- OVERRIDES...]

1. calibrates: ``python -m slurmgen workflow=nr dataset.limit=N OVERRIDES run.dir=OUT/cal``;
2. for each size: ``slurmgen plan OUT/cal --records SIZE --hours H --output json`` (H generous:
   the plan keeps the calibration's config), then runs the plan's overrides on top of the
   same OVERRIDES and times the command (start to exit, as a user waits);
3. prints predicted vs measured wall time per size, side by side, with the load average
   before and after each run (the machine may be shared).

Default OVERRIDES: the simulator on the local SLURM cluster (``cluster=slurm``), one LLM
replica, two peers, 64 tasks in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SLURM = ["workflow=nr", "llm.time_scale=10", "cluster=slurm", "cluster.poll_s=1", "cluster.peer.mem=500M",
         "llm.slurm.mem=500M", "llm.replicas=1", "run.peers=2", "run.max_in_flight=64", "run.progress=false",
         "cluster.job_prefix=sgplancheck"]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def slurmgen(*args: str, timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess[str]]:
    """(seconds from start to exit, the finished process) of ``python -m slurmgen ARGS``."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "slurmgen", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"slurmgen {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.monotonic() - start, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 6000])
    ap.add_argument("--calibration-records", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0, help="the plan's deadline (default generous: 24; a tight "
                    "one makes the plan scale the replicas, peers and in-flight cap)")
    ap.add_argument("--calibration", type=Path, help="reuse this finished run as the calibration (same overrides)")
    ap.add_argument("overrides", nargs="*", help="after --: the run's overrides (default: the simulator on SLURM)")
    args = ap.parse_args()
    common = args.overrides or SLURM
    cal = args.calibration or args.out / "cal"
    if not args.calibration:
        before = load()
        wall, _ = slurmgen(*common, f"dataset.limit={args.calibration_records}", f"run.dir={cal}")
        print(f"calibration: {args.calibration_records} records in {wall:.1f} s (load {before} -> {load()})",
              flush=True)
    rows = []
    for size in args.sizes:
        _, planned = slurmgen("plan", str(cal), "--records", str(size), "--hours", str(args.hours), "--output", "json")
        plan = json.loads(planned.stdout)["plan"]
        before = load()
        wall, _ = slurmgen(*common, *plan["overrides"][1:], f"run.dir={args.out / f'run-{size}'}")
        rows.append((size, plan, wall, before, load()))
        print(f"{size} records: predicted {plan['expected_wall_s']:.1f} s, measured {wall:.1f} s", flush=True)
    print(f"\n{'records':>8} {'predicted s':>12} {'measured s':>11} {'error':>7}  fixed+steady s  rate/s  bound      "
          "load before -> after")
    for size, plan, wall, before, after in rows:
        error = (plan["expected_wall_s"] - wall) / wall
        print(f"{size:8d} {plan['expected_wall_s']:12.1f} {wall:11.1f} {error:+7.1%}  {plan['fixed_s']:5.1f}+"
              f"{plan['steady_s']:<8.1f} {plan['records_per_s']:7.1f} {plan['bound']:10} {before} -> {after}")
    print("overrides:", " ".join(common))
    for size, plan, *_ in rows:
        print(f"  + {size}: the plan's", " ".join(plan["overrides"][1:]))


if __name__ == "__main__":
    main()
