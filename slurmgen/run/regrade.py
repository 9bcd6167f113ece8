"""``slurmgen regrade RUN_DIR``: every record's reward again, from its recorded trajectory.

    slurmgen regrade runs/tau2-20261207-1430

The workflow's ``regrade`` function (tau2: its evaluator, with the task definitions
installed now) recomputes each record. The new records go to
``RUN/regrade/<time>/results/`` (shard by shard, as the originals, which are never
touched), with ``changes.json`` (each changed record: old -> new) and ``metrics.json``
(the workflow's metrics before and after). Prints how many changed and, per task, the
reward before and after. Exit 0 when done (whether or not anything changed), 2 for a
path that is not a run directory or a run whose workflow has no regrade.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from slurmgen.config.load import load_run_config, register_all
from slurmgen.config.workflows import get_workflow
from slurmgen.errors import ConfigError, SlurmgenError
from slurmgen.exitcodes import Exit
from slurmgen.records import Record, read_shard, shard_paths
from slurmgen.rundir import RunDir, write_atomic

SHOW = 50  # changed tasks printed; changes.json has them all


class Change(msgspec.Struct):
    task_id: str
    old_status: str
    new_status: str
    old_reward: float | None
    new_reward: float | None
    new_reason: str


class Outcome(msgspec.Struct):
    records: int
    regraded: int  # records the workflow's function looked at again (the others never reached a reward)
    changes: list[Change]
    source: str
    out: str


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="slurmgen regrade", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the run directory (a tau2 run)")
    return ap.parse_args(argv)


def _open(run: RunDir) -> tuple[Any, Callable[[Record], Record], str, list[Path]]:
    if not run.config.exists():
        raise ConfigError(f"{run.root} is not a run directory (no config.yaml)")
    register_all()
    conf = load_run_config(run.config)
    regrader = get_workflow(conf.workflow.name).regrade
    if regrader is None:
        raise ConfigError(f"{run.root} is a {conf.workflow.name!r} run; regrade recomputes rewards from recorded "
                          "trajectories and only a workflow with a reward has it (workflow=tau2)")
    shards = shard_paths(run.results)
    if not shards:
        raise ConfigError(f"{run.results} holds no records (shard-*.jsonl); nothing to regrade")
    fn, source = regrader(conf)
    return conf, fn, source, shards


def _new_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3`` ... if an earlier regrade took it: never one written before."""
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            (path / "results").mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"{base.parent} holds 999 regrades of this second; remove some")


def _reward(r: Record) -> float | None:
    return r.metrics.get("reward") if r.status == "ok" else None


def regrade(run: RunDir, now: float | None = None) -> tuple[Outcome, list[Record], list[Record], Any]:
    """Regrade every record of ``run`` into a new directory beside its results."""
    conf, fn, source, shards = _open(run)
    out = _new_dir(run.root / "regrade" / time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time())))
    encoder = msgspec.json.Encoder()
    old_all: list[Record] = []
    new_all: list[Record] = []
    changes: list[Change] = []
    regraded = 0
    for shard in shards:
        old = list(read_shard(shard))
        new = [fn(r) for r in old]
        regraded += sum(a is not b for a, b in zip(old, new))
        changes += [Change(a.task_id, a.status, b.status, _reward(a), _reward(b), b.reason)
                    for a, b in zip(old, new) if (a.status, _reward(a)) != (b.status, _reward(b))]
        write_atomic(out / "results" / shard.name, b"".join(encoder.encode(r) + b"\n" for r in new))
        old_all += old
        new_all += new
    return Outcome(len(old_all), regraded, changes, source, str(out)), old_all, new_all, conf


def _report(outcome: Outcome, before: dict[str, float], after: dict[str, float]) -> str:
    head = (f"{outcome.records} records, {outcome.regraded} regraded ({outcome.source}): "
            f"{len(outcome.changes)} changed, {outcome.regraded - len(outcome.changes)} unchanged, "
            f"{outcome.records - outcome.regraded} not regraded (ended before a reward)")
    lines = [head]
    for c in outcome.changes[:SHOW]:
        old = c.old_reward if c.old_status == "ok" else c.old_status
        new = c.new_reward if c.new_status == "ok" else f"{c.new_status} ({c.new_reason})"
        lines.append(f"  {c.task_id}: {old} -> {new}")
    if len(outcome.changes) > SHOW:
        lines.append(f"  ... {len(outcome.changes) - SHOW} more in changes.json")
    keys = [k for k in before if k == "reward" or k.startswith("pass^")]
    lines.append("  " + "; ".join(f"{k} {before[k]:.4f} -> {after.get(k, 0.0):.4f}" for k in keys))
    lines.append(f"new records: {outcome.out}/results (the originals are untouched)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse(argv)
    run = RunDir(Path(args.run).resolve())
    try:
        outcome, old, new, conf = regrade(run)
    except SlurmgenError as exc:
        print(f"slurmgen regrade: error: {exc}", file=sys.stderr)
        return int(Exit.REFUSED)
    metrics = get_workflow(conf.workflow.name).metrics
    before, after = metrics(old), metrics(new)
    out = Path(outcome.out)
    write_atomic(out / "changes.json", msgspec.json.format(msgspec.json.encode(outcome.changes)))
    write_atomic(out / "metrics.json", msgspec.json.format(msgspec.json.encode({"before": before, "after": after})))
    print(_report(outcome, before, after))
    return int(Exit.OK)
