"""Write a large run directory for the viewer's benchmark, from the records of real runs.

    python tools/synth_records.py OUT_RUN_DIR --records 1000000 --from RUN [RUN ...]

The records of the given (simulator) runs are the templates: record ``i`` is template
``i mod T`` with its own task id (``synth-<i>:<trial>``), every 4th a trial 1, and every
97th turned into a failed record (``llm_error: ...``), written round-robin into
``--shards`` files ``results/shard-*.jsonl``, in the format ``slurmgen.records`` writes.
``--input-chars`` trims each row kept in ``input`` (a record still validates) so that a
million records fit on a shared disk.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import msgspec

from slurmgen.records import Record

TRIM = 300


def templates(runs: list[Path], input_chars: int) -> list[Record]:
    out = []
    for run in runs:
        for path in sorted((run / "results").glob("shard-*.jsonl")):
            for line in path.read_bytes().splitlines():
                rec = msgspec.json.decode(line, type=Record)
                text = bytes(rec.input)
                if len(text) > input_chars:
                    rec.input = msgspec.Raw(msgspec.json.encode({"trimmed": text[:input_chars].decode(errors="ignore")}))
                out.append(rec)
    if not out:
        raise SystemExit("no records in the given runs: run a workflow first (python -m slurmgen workflow=...)")
    return out


def synth(i: int, t: Record) -> Record:
    trial = 1 if i % 4 == 3 else 0
    row = f"synth-{i:07d}"
    changes: dict = {"task_id": f"{row}:{trial}", "row_id": row, "trial": trial, "line": i + 1}
    if i % 97 == 0:
        changes.update(status="failed", reason=f"llm_error: synthetic failure of record {i} (HTTP 503)")
    return msgspec.structs.replace(t, **changes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--from", dest="runs", type=Path, nargs="+", required=True)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--input-chars", type=int, default=TRIM)
    args = p.parse_args()
    base = templates(args.runs, args.input_chars)
    results = args.out / "results"
    results.mkdir(parents=True, exist_ok=True)
    (args.out / "state").mkdir(exist_ok=True)
    files = [open(results / f"shard-{k:05d}.jsonl", "wb") for k in range(args.shards)]
    enc, t0, size = msgspec.json.Encoder(), time.perf_counter(), 0
    for i in range(args.records):
        line = enc.encode(synth(i, base[i % len(base)])) + b"\n"
        files[i % args.shards].write(line)
        size += len(line)
    for f in files:
        f.close()
    print(f"{args.records} records ({size / 2**30:.2f} GiB) from {len(base)} templates into {args.shards} shards "
          f"of {results} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
