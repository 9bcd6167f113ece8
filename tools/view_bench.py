"""Time ``slurmgen view`` on a large run and measure its memory; prints figures, asserts nothing.

    python tools/synth_records.py /tmp/big --records 1000000 --from RUN...   # a million records
    python tools/view_bench.py /tmp/big [--rebuild]

Open = from starting ``slurmgen view RUN --port 0`` until the page's first two requests
(``/api/meta`` and the first 50 rows) are answered. The first open builds the index
(``--rebuild`` deletes it first); later opens reuse it. RSS is the server's (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    mib = [int(m.group(1)) / 1024 for key in ("VmRSS", "VmHWM") if (m := re.search(rf"{key}:\s+(\d+) kB", text))]
    return mib[0], mib[1]


def get(url: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    with LOCAL.open(url, timeout=600) as r:
        body = r.read()
    return time.perf_counter() - t0, json.loads(body)


def open_viewer(run: Path) -> tuple[subprocess.Popen, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "slurmgen", "view", str(run), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        print("   ", line.rstrip())
        if found := re.search(r"(http://\S+/)", line):
            url = found.group(1)
            get(url + "api/meta")
            get(url + "api/rows?limit=50")
            return proc, url, time.perf_counter() - t0
    raise SystemExit("slurmgen view did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--rebuild", action="store_true", help="delete the index first (time its build)")
    args = p.parse_args()
    if args.rebuild:
        shutil.rmtree(args.run / "state" / "view-index", ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import slurmgen.cli, slurmgen.view.cli, slurmgen.view.server"], check=True)
    print(f"python + imports alone: {time.perf_counter() - t0:.2f} s")
    for label in ("first open" if args.rebuild else "open", "open again"):
        proc, url, took = open_viewer(args.run)
        rss, hwm = rss_mb(proc.pid)
        print(f"{label}: {took:.2f} s to the first page; RSS {rss:.0f} MiB (peak {hwm:.0f} MiB)")
        if label != "open again":
            proc.terminate()
            proc.wait()
    n = get(url + "api/meta")[1]["records"]
    for path in ("api/rows?status=failed", "api/rows?metric=reward&min=1", "api/rows?trial=1&role=env",
                 f"api/rows?offset={n - 50}", f"api/record/{n - 1}", "api/rows?q=synth-0999999"):
        took, body = get(url + path)
        total = body.get("total", body.get("task_id"))
        rss, hwm = rss_mb(proc.pid)
        print(f"{path:32} {took * 1000:8.0f} ms  total/task={total}  RSS {rss:.0f} MiB (peak {hwm:.0f} MiB)")
    proc.terminate()
    proc.wait()
    size = sum(f.stat().st_size for f in (args.run / "state" / "view-index").iterdir())
    data = sum(f.stat().st_size for f in (args.run / "results").glob("shard-*.jsonl"))
    print(f"{n} records, {data / 2**30:.2f} GiB of records; index {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
