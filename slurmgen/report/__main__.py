"""``python -m slurmgen.report RUN_DIR [--sibling-png]``: (re)generate RUN/report.html."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slurmgen.report import write_report
from slurmgen.rundir import RunDir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slurmgen report", description=__doc__)
    parser.add_argument("run_dir", help="the run directory (run.dir)")
    parser.add_argument("--sibling-png", action="store_true",
                        help="write the charts as RUN/report/*.png instead of embedding them")
    args = parser.parse_args(argv)
    run = RunDir(Path(args.run_dir))
    if not run.results.is_dir():
        print(f"slurmgen report: {run.root} is not a run directory (no results/)", file=sys.stderr)
        return 2
    print(write_report(run.root, embed=not args.sibling_png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
