"""Input-side figures, printed, asserting nothing:

- the duplicate-id check over N ids (time, peak RSS; the bound: 10,000,000 ids in 512 MiB);
- a run over an R-row Parquet file of NR-shaped documents: time from the command to its
  first record, and the peak RSS of the driver and its peers together (sampled every 0.2 s),
  then SIGINT (the bound: 1,000,000 rows, first record in < 10 s, under 1 GiB).

    python tools/bench_inputs.py [--ids 10000000] [--parquet-rows 1000000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from slurmgen.input.duplicates import scan


def ids(n: int, dup_every: int):
    for i in range(n):
        yield i, i + 1, f"<urn:uuid:{(i if i % dup_every else i // 2):012d}>"


def write_parquet(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, rows, 50_000):
        n = min(50_000, rows - start)
        table = pa.table({
            "text": [f"Prove that the sum of the first {i} odd numbers is {i} squared, by induction on n. " * 6
                     for i in range(start, start + n)],
            "metadata": [{"WARC-Record-ID": f"<urn:uuid:{i:012d}>"} for i in range(start, start + n)],
            "language_id_whole_page_fasttext": [[("en", 0.93)] for _ in range(n)],
        }, schema=pa.schema([("text", pa.string()), ("metadata", pa.struct([("WARC-Record-ID", pa.string())])),
                             ("language_id_whole_page_fasttext", pa.map_(pa.string(), pa.float64()))]))
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def rss_of_run(run_dir: Path, driver_pid: int) -> int:
    """KiB of resident memory of the driver and the peers of this run."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,rss,args"], capture_output=True, text=True).stdout
    total = 0
    for line in out.splitlines()[1:]:
        pid, rss, args = line.split(None, 2)
        if int(pid) == driver_pid or (str(run_dir) in args and "slurmgen.runtime.peer" in args):
            total += int(rss)
    return total


def parquet_start(rows: int, out: Path) -> None:
    data = out / f"docs-{rows}.parquet"
    if not data.exists():
        t0 = time.perf_counter()
        write_parquet(data, rows)
        print(f"wrote {data} ({data.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    run_dir = out / "run"
    subprocess.run(["rm", "-rf", str(run_dir)])
    t0 = time.perf_counter()
    driver = subprocess.Popen([sys.executable, "-m", "slurmgen", "workflow=nr", f"dataset.path={data}",
                               f"run.dir={run_dir}", "run.progress=false", "llm.time_scale=100"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first, peak = None, 0
    while driver.poll() is None and time.perf_counter() - t0 < 600:
        peak = max(peak, rss_of_run(run_dir, driver.pid))
        shards = list((run_dir / "results").glob("*.jsonl")) if run_dir.exists() else []
        if first is None and any(p.stat().st_size for p in shards):
            first = time.perf_counter() - t0
        if first is not None and time.perf_counter() - t0 > first + 10:
            break
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    driver.wait()
    print(f"parquet run: {rows:,} rows; first record {first:.1f} s after the command; peak RSS driver + peers "
          f"{peak / 1024:.0f} MiB (over the first 10 s of records); records by status: {statuses(run_dir)}"
          if first is not None
          else f"parquet run: no record in 600 s; {driver.stderr.read().decode()[-500:] if driver.stderr else ''}")


def statuses(run_dir: Path) -> dict[str, int]:
    """What the measured records were (a run whose rows all fail would start fast for nothing)."""
    counts: dict[str, int] = {}
    for path in (run_dir / "results").glob("*.jsonl"):
        data = path.read_bytes()
        for line in data[:data.rfind(b"\n") + 1].splitlines():
            status = json.loads(line)["status"]
            counts[status] = counts.get(status, 0) + 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=10_000_000, help="0 = skip the duplicate check")
    ap.add_argument("--parquet-rows", type=int, default=1_000_000, help="0 = skip the Parquet run")
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/slurmgen/bench-inputs"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.parquet_rows:
        parquet_start(args.parquet_rows, out)
    if not args.ids:
        return
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rows, dups = scan(ids(args.ids, 1_000_000), ids(args.ids, 1_000_000), "suffix", "bench")
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"duplicate check: {rows:,} ids, {len(dups.renamed)} renamed, {wall:.1f} s, "
          f"peak RSS {peak / 1024:.0f} MiB (at start {before / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
