"""Input-side figures: the duplicate-id check over N ids (time, peak RSS).

    python tools/bench_inputs.py [--ids 10000000]

Prints figures; asserts nothing (the issue's bound: 10,000,000 ids in 512 MiB).
"""

from __future__ import annotations

import argparse
import resource
import time

from slurmgen.duplicates import scan


def ids(n: int, dup_every: int):
    for i in range(n):
        yield i, i + 1, f"<urn:uuid:{(i if i % dup_every else i // 2):012d}>"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=10_000_000)
    args = ap.parse_args()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rows, dups = scan(ids(args.ids, 1_000_000), ids(args.ids, 1_000_000), "suffix", "bench")
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"duplicate check: {rows:,} ids, {len(dups.renamed)} renamed, {wall:.1f} s, "
          f"peak RSS {peak / 1024:.0f} MiB (at start {before / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
