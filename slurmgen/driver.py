"""The driver: check the config, prepare the run directory, start the plan, follow the
run from its output shards, stop everything it started, write summary.json.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

import msgspec

from slurmgen import dataset
from slurmgen.config import SlurmgenConf
from slurmgen.confload import dump
from slurmgen.errors import SlurmgenError, StartupError
from slurmgen.launchers.local import LocalLauncher, Running
from slurmgen.launchers.plan import make_plan
from slurmgen.logs import setup_logging
from slurmgen.progress import ResultsTail
from slurmgen.resume import check_resume
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.summary import read_records, summarize
from slurmgen.ui import ProgressBar
from slurmgen.workflow import Workflow, import_path, load_workflow

log = logging.getLogger("slurmgen.driver")

POLL_S = 0.25


class RunFailed(SlurmgenError):
    """A process of the run died; the message names its log."""


def prepare(conf: SlurmgenConf) -> tuple[RunDir, Workflow, int]:
    """Everything that can fail before a process starts fails here."""
    workflow = load_workflow(conf.workflow)
    if conf.dataset.path:
        conf.dataset.path = str(dataset.check_path(conf.dataset.path))
    else:
        conf.dataset.path = str(import_path(conf.workflow.builtin_dataset, "workflow.builtin_dataset")())
    make_plan(conf, Path(conf.run.dir))  # validates backends and sizes
    run = RunDir(Path(conf.run.dir).resolve())
    conf.run.dir = str(run.root)
    text = dump(conf)
    check_resume(run, conf)
    run.make()
    write_atomic(run.config, text.encode())
    expected = dataset.count_rows(Path(conf.dataset.path), conf.dataset.limit) * conf.run.trials
    return run, workflow, expected


def _clear_stale(run: RunDir, shards: int) -> None:
    run.registry_address.unlink(missing_ok=True)
    for i in range(max(shards, len(list(run.state.glob("shard-*.done"))))):
        run.shard_done(i).unlink(missing_ok=True)


def _check_alive(launcher: LocalLauncher) -> None:
    for r in launcher.exited():
        raise RunFailed(f"{r.spec.name} exited with code {r.proc.returncode} before the run ended; "
                        f"see {launcher.run.log(r.spec.name + '.out')} and {launcher.run.logs}/")


def _all_done(run: RunDir, shards: int) -> bool:
    return all(run.shard_done(i).exists() for i in range(shards))


def _wait_registry(run: RunDir, launcher: LocalLauncher, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not run.registry_address.exists():
        _check_alive(launcher)
        if time.monotonic() > deadline:
            raise StartupError(f"the registry wrote no {run.registry_address} in {timeout_s:.0f} s")
        time.sleep(0.05)


def follow(run: RunDir, launcher: LocalLauncher, shards: int, bar: ProgressBar) -> None:
    tail = ResultsTail(run.results)
    while True:
        bar.update(tail.poll())
        if _all_done(run, shards):
            bar.update(tail.poll())
            return
        _check_alive(launcher)
        time.sleep(POLL_S)


def execute(conf: SlurmgenConf) -> Path:
    run, workflow, expected = prepare(conf)
    setup_logging(run.log("driver"))
    started = time.time()
    plan = make_plan(conf, run.root)
    launcher = LocalLauncher(run)
    _clear_stale(run, conf.run.peers)
    bar = ProgressBar(expected, ResultsTail(run.results).poll(), enabled=conf.run.progress)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        launcher.start(plan.registry)
        _wait_registry(run, launcher, conf.run.startup_timeout_s)
        for spec in [*plan.services, *plan.peers]:
            launcher.start(spec)
        follow(run, launcher, conf.run.peers, bar)
    finally:
        bar.close()
        for component in ("peer", "llm", "registry"):
            launcher.stop(component)
        signal.signal(signal.SIGTERM, previous)
    summary = summarize(list(read_records(run.results)), workflow=workflow.name, started_at=started,
                        wall_s=time.time() - started, expected=expected, metrics=workflow.metrics)
    write_atomic(run.summary, msgspec.json.format(msgspec.json.encode(summary)))
    print(f"{summary.tasks_total} records ({summary.tasks_ok} ok, {summary.tasks_rejected} rejected, "
          f"{summary.tasks_failed} failed), {summary.tokens_per_s:.0f} tokens/s; summary: {run.summary}")
    return run.root


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_or_explain(conf: SlurmgenConf) -> int:
    """The command-line boundary: a SlurmgenError becomes one clear line and exit code 2."""
    try:
        execute(conf)
    except SlurmgenError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("slurmgen: interrupted; every process of the run was stopped. Run again with the same "
              "run.dir to resume.", file=sys.stderr)
        return 130
    return 0
