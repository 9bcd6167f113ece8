"""Check a finished tau2 run against tau2 itself: every record's trajectory evaluated by
tau2's own ``evaluate_simulation`` (its own environments, its own domain registry), and
compared with the reward and RewardInfo the run recorded.

    python tools/tau2_verify_run.py RUN_DIR
    # airline: 50 records, tau2 agrees on 50; reward 1.0 on 50 (tau2: 50); ...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slurmgen.agents.tau2 import domain as sg_domain
from slurmgen.config.load import load_run_config, register_all
from slurmgen.run.summary import read_records
from tests.tau2_differential import verify_record


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/tau2_verify_run.py RUN_DIR", file=sys.stderr)
        return 2
    run = Path(argv[0])
    register_all()
    conf = load_run_config(run / "config.yaml")
    dom = conf.workflow.domain
    tasks = {t["id"]: t for t in sg_domain.load_tasks(dom, "all")}
    start = time.monotonic()
    records = list(read_records(run / "results"))
    problems: list[str] = []
    ones = tau2_ones = 0
    for rec in records:
        reward, issues = verify_record(dom, tasks[rec.row_id], rec)
        problems += issues
        ones += rec.metrics.get("reward") == 1.0
        tau2_ones += reward == 1.0
    agree = len(records) - len({p.split(":")[0] + ":" + p.split(":")[1] for p in problems})
    print(f"{dom}: {len(records)} records, tau2 agrees on {agree}; reward 1.0 on {ones} (tau2: {tau2_ones}); "
          f"checked in {time.monotonic() - start:.0f} s")
    for p in problems[:20]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
