"""``slurmgen export RUN --out PATH``: a training-ready dataset from a run's records.

    slurmgen export RUN --out train.parquet --format parquet --shape sft
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slurmgen.config.load import load_run_config, register_all
from slurmgen.config.workflows import get_workflow
from slurmgen.errors import ConfigError, SlurmgenError
from slurmgen.exitcodes import Exit
from slurmgen.export import shapes, writers
from slurmgen.export.card import card, card_path
from slurmgen.export.read import iter_records
from slurmgen.protocol import TERMINAL
from slurmgen.rundir import RunDir


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="slurmgen export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the run directory (finished or still running)")
    ap.add_argument("--out", required=True, help="a file (jsonl, parquet) or a directory (hf)")
    ap.add_argument("--format", choices=writers.FORMATS, default=None,
                    help="default: from --out's suffix (.jsonl/.json -> jsonl, .parquet -> parquet)")
    ap.add_argument("--shape", choices=shapes.SHAPES, default="records",
                    help="records: the records as written; chat: messages per task; sft: prompt/completion pairs")
    ap.add_argument("--status", default="ok", help=f"ok (default), any, or a list such as ok,rejected "
                    f"(of {', '.join(TERMINAL)})")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    return ap.parse_args(argv)


def export(args: argparse.Namespace) -> tuple[Path, int, int]:
    run = RunDir(Path(args.run).resolve())
    if not run.config.exists():
        raise ConfigError(f"{run.root} is not a run directory (no config.yaml)")
    out = Path(args.out).resolve()
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists; pass --force to replace it, or choose another --out")
    statuses = None if args.status == "any" else check_statuses(args.status)
    args.format = args.format or format_of(out)
    register_all()
    conf = load_run_config(run.config)
    rules = get_workflow(conf.workflow.name).export
    try:
        shape = shapes.resolve(args.shape, rules, conf.workflow.name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    seen = [0]

    def rows() -> Iterator[dict[str, Any]]:
        for rec in iter_records(run.results, statuses):
            seen[0] += 1
            row = shape(rec)
            if row is not None:
                yield row

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")  # --out appears whole or not at all
    _remove(partial)
    try:
        n = writers.write(rows(), partial, args.format)
    except BaseException:
        _remove(partial)
        raise
    _remove(out)
    os.replace(partial, out)
    card_path(out, args.format).write_text(card(run, out=out, fmt=args.format, shape=args.shape,
                                                statuses=args.status, rows=n, records=seen[0]))
    return out, seen[0], n


SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def check_statuses(text: str) -> set[str]:
    wanted = {s.strip() for s in text.split(",")}
    unknown = sorted(wanted - {s.value for s in TERMINAL})
    if unknown:
        raise ConfigError(f"--status {text}: unknown status {', '.join(unknown)}; valid: {', '.join(TERMINAL)}, "
                          "a list of them (ok,rejected) or any")
    return wanted


def format_of(out: Path) -> str:
    """--format from --out's suffix, when --format is not given."""
    fmt = SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--out {out}: cannot tell the format from {out.suffix or 'a name without a suffix'}; "
                          f"pass --format ({', '.join(writers.FORMATS)}) or name the file .jsonl or .parquet")
    return fmt


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        out, records, rows = export(args)
    except SlurmgenError as exc:
        print(f"slurmgen export: error: {exc}", file=sys.stderr)
        return int(Exit.REFUSED)
    print(f"{rows} rows ({args.shape}) from {records} records with status {args.status} -> {out} "
          f"(card: {card_path(out, args.format)})")
    return int(Exit.OK)
