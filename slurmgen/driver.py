"""The driver: check the config, prepare the run directory, start the plan, follow the
run from its output shards, stop everything it started, write summary.json.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from typing import Any, Protocol
from pathlib import Path

import msgspec

from slurmgen import curve, dataset, duplicates, fdlimit, hosts, inputs, ports
from slurmgen.bounds import check_bounds
from slurmgen.config import SlurmgenConf
from slurmgen.confload import dump
from slurmgen.diskspace import check_room
from slurmgen.errors import ConfigError, DatasetError, EarlyStop, RunCrashed, SlurmgenError, StartupError
from slurmgen.exitcodes import Exit
from slurmgen.launchers.local import LocalLauncher
from slurmgen.launchers.plan import make_plan
from slurmgen.logs import setup_logging
from slurmgen.metrics import DriverMetrics, Exporter
from slurmgen.progress import Counts, ResultsTail
from slurmgen.report import write_report
from slurmgen.resume import check_resume
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.spill.paths import spill_root
from slurmgen.summary import Summary, cross_node, endpoint_stats, pool_usage, read_records, spill_counts, summarize
from slurmgen.ui import ProgressBar
from slurmgen.validate import report as validation_report
from slurmgen.validate import validate
from slurmgen.watchdog import Watchdog, check_conf as check_watchdog_conf, last_errors
from slurmgen.workflow import Workflow, import_path, load_workflow

log = logging.getLogger("slurmgen.driver")

POLL_S = 0.25


class Terminated(BaseException):
    """SIGTERM reached the driver (a BaseException, like KeyboardInterrupt: nothing may swallow it)."""


def prepare(conf: SlurmgenConf) -> tuple[RunDir, Workflow, int]:
    """Everything that can fail before a process starts fails here."""
    fdlimit.raise_nofile()  # the processes started here inherit it
    check_bounds(conf)
    workflow = load_workflow(conf.workflow)
    if conf.dataset.hf:
        conf.dataset.path = str(dataset.check_path(f"{inputs.HUB}{conf.dataset.hf}:{conf.dataset.split}"))
    elif conf.dataset.path:
        conf.dataset.path = str(dataset.check_path(conf.dataset.path))
    else:
        conf.dataset.path = str(import_path(conf.workflow.builtin_dataset, "workflow.builtin_dataset")())
    make_plan(conf, Path(conf.run.dir))  # validates backends and sizes
    check_watchdog_conf(conf.run)
    source = Path(conf.dataset.path)
    conf.dataset.format = inputs.detect(source)
    conf.dataset.fingerprint = inputs.fingerprint(source, conf.dataset.format)
    rows, dups = scan_rows(conf, workflow)
    expected = (rows - len(dups.skipped)) * conf.run.trials
    if expected == 0:
        raise DatasetError(f"dataset.path={conf.dataset.path!r} has no rows: nothing to run. Give a file with "
                           "one row per line (or a Parquet / Hugging Face dataset), or drop dataset.path for the "
                           "workflow's built-in data")
    run = RunDir(Path(conf.run.dir).resolve())
    conf.run.dir = str(run.root)
    text = dump(conf)
    check_resume(run, conf)
    run.make()
    curve.prepare_keys(run.root, conf.run.curve)
    write_atomic(run.config, text.encode())
    write_atomic(duplicates.path(run.state), msgspec.json.encode(dups))
    return run, workflow, expected


def scan_rows(conf: SlurmgenConf, workflow: Workflow) -> tuple[int, duplicates.Duplicates]:
    """Count the rows and find duplicate ids (refused unless dataset.on_duplicate says otherwise)."""
    d = conf.dataset
    return dataset.find_duplicates(Path(d.path), d.limit, workflow.row_type, d.max_row_bytes, d.on_duplicate,
                                   f"dataset.path={d.path!r}")


def _clear_stale(run: RunDir, shards: int) -> None:
    run.registry_address.unlink(missing_ok=True)
    run.refused.unlink(missing_ok=True)
    for i in range(max(shards, len(list(run.state.glob("shard-*.done"))))):
        run.shard_done(i).unlink(missing_ok=True)


class Watcher(Protocol):
    def check(self) -> None:
        """Raise RunCrashed (or another SlurmgenError) when the run cannot go on."""


class Supervisor:
    """Restarts a crashed process (bounded); a peer resumes from its shard's records."""

    def __init__(self, launcher: LocalLauncher, max_restarts: int) -> None:
        self.launcher = launcher
        self.max_restarts = max_restarts
        self.restarts: dict[str, int] = {}

    def check(self) -> None:
        for r in self.launcher.exited():
            check_room(self.launcher.run.root)  # a full disk: stop now, restarts would fail the same way
            name, code = r.spec.name, r.proc.returncode
            where = f"see {self.launcher.run.log(name + '.out')} and {self.launcher.run.logs}/"
            if self.restarts.get(name, 0) >= self.max_restarts:
                last = last_errors(self.launcher.run.log(name), 1) or last_errors(self.launcher.run.log(name + ".out"), 1)
                raise RunCrashed(f"{name} exited with code {code} and was restarted {self.max_restarts} times "
                                 f"already (run.max_restarts); {where}" + (f"; its last error: {last[0]}" if last else ""))
            self.restarts[name] = self.restarts.get(name, 0) + 1
            log.warning("%s exited with code %s: restarting it (%d/%d); %s", name, code,
                        self.restarts[name], self.max_restarts, where)
            self.launcher.restart(r)


def _top_reasons(counts: Counts) -> str:
    return ", ".join(f"{k} ({n})" for k, n in counts.failure_reasons.most_common(3))


def check_failure_rate(counts: Counts, conf: SlurmgenConf, remaining: int) -> None:
    """Stop early when too many tasks fail: over run.max_failure_rate once min_tasks_for_rate (or
    every task, for a smaller run) are done, or when each of the first run.fail_fast_tasks tasks that
    ran (bad input rows aside) failed: a bug in a role or a dead server, not bad luck."""
    if 0 < conf.run.fail_fast_tasks <= counts.ran == counts.ran_failed:  # also when they were all of it
        raise EarlyStop(f"stopping early: the first {counts.ran} tasks all failed (run.fail_fast_tasks="
                        f"{conf.run.fail_fast_tasks}); first reason: {counts.first_failure}. Fix the cause (see "
                        "the records' reason and logs/), then run again with the same run.dir.")
    if counts.done >= remaining:  # finished: the end of the run judges its failure rate
        return
    enough = min(conf.run.min_tasks_for_rate, remaining)
    if counts.done < enough or counts.failed <= conf.run.max_failure_rate * counts.done:
        return
    raise EarlyStop(f"stopping early: {counts.failed} of {counts.done} tasks failed, over "
                    f"run.max_failure_rate={conf.run.max_failure_rate}; most frequent: {_top_reasons(counts)}. "
                    "Fix the cause (see the records' reason and logs/), then run again with the same run.dir.")


def failure_rate_exceeded(summary: Summary, conf: SlurmgenConf) -> bool:
    return summary.tasks_failed > conf.run.max_failure_rate * max(1, summary.tasks_total)


def _all_done(run: RunDir, shards: int) -> bool:
    return all(run.shard_done(i).exists() for i in range(shards))


def _wait_registry(run: RunDir, supervisor: Watcher, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not run.registry_address.exists():
        supervisor.check()
        if time.monotonic() > deadline:
            raise StartupError(f"the registry wrote no {run.registry_address} in {timeout_s:.0f} s")
        time.sleep(0.05)


def _check_refused(run: RunDir) -> None:
    try:
        text = run.refused.read_text()
    except FileNotFoundError:
        return
    raise ConfigError("the run was refused before any task was issued (the servers are up, the config cannot work "
                      "with them):\n  " + "\n  ".join(text.splitlines()))


def follow(run: RunDir, supervisor: Watcher, conf: SlurmgenConf, bar: ProgressBar, expected: int,
           metrics: DriverMetrics | None = None) -> None:
    tail = ResultsTail(run.results)
    fresh = ResultsTail(run.results, skip_existing=True)  # this invocation's records: its failure rate
    remaining = expected - tail.poll().done
    watchdog = Watchdog(run, conf.run, expected)
    while True:
        counts = tail.poll()
        bar.update(counts)
        if metrics is not None:
            metrics.update(counts)
        check_failure_rate(fresh.poll(), conf, remaining)
        if _all_done(run, conf.run.peers):
            bar.update(tail.poll())
            return
        _check_refused(run)
        supervisor.check()
        watchdog.check(counts.done)
        time.sleep(POLL_S)


def make_launcher(conf: SlurmgenConf, run: RunDir) -> tuple[Any, Any]:
    """cluster.kind picks the launcher; the second item's check() watches the processes."""
    if conf.cluster.kind == "slurm":
        from slurmgen.launchers.slurm import SlurmLauncher

        slurm = SlurmLauncher(conf, run)
        return slurm, slurm
    if conf.cluster.kind != "local":
        raise ConfigError(f"cluster.kind={conf.cluster.kind!r} is unknown; valid: local, slurm "
                          "(on the command line: cluster=local or cluster=slurm)")
    local = LocalLauncher(run)
    return local, Supervisor(local, conf.run.max_restarts)


def execute(conf: SlurmgenConf) -> Summary | None:
    if conf.run.validate_only:
        result = validate(conf)
        print(validation_report(result, conf.dataset.path))
        if not result.ok:
            raise DatasetError(f"{len(result.bad)} bad rows (listed above); fix them or let them become failed records")
        print("config and dataset are valid; nothing was started")
        return None
    run, workflow, expected = prepare(conf)
    setup_logging(run.log("driver"), fmt=conf.run.log_format)
    if conf.cluster.port_range:  # the driver's own /metrics too
        os.environ[ports.ENV] = conf.cluster.port_range
    started = time.time()
    plan = make_plan(conf, run.root)
    launcher, supervisor = make_launcher(conf, run)
    _clear_stale(run, conf.run.peers)
    initial = ResultsTail(run.results).poll()
    bar = ProgressBar(expected, initial, enabled=conf.run.progress)
    exporter = Exporter("driver", run.root, hosts.default_host(conf.cluster.kind, conf.cluster.host, conf.cluster.interface),
                        kind="driver", enabled=conf.run.metrics, sd_extra_dir=conf.run.metrics_sd_dir or None)
    metrics = exporter.driver(expected, initial)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        launcher.start(plan.registry)
        _wait_registry(run, supervisor, conf.run.startup_timeout_s)
        launcher.start_all([*plan.services, *plan.peers])
        follow(run, supervisor, conf, bar, expected, metrics)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the stop short
        bar.close()
        exporter.close()
        for component in ("peer", "toolpool", "llm", "registry"):
            launcher.stop(component)
        signal.signal(signal.SIGTERM, previous)
        if conf.cluster.kind == "local":  # every spill store of the run is on this machine
            shutil.rmtree(spill_root(conf.spill, run.root), ignore_errors=True)
    records = list(read_records(run.results))
    summary = summarize(records, workflow=workflow.name, started_at=started,
                        wall_s=time.time() - started, expected=expected, metrics=workflow.metrics)
    summary.usage_by_pool = pool_usage((r.usage for r in records), endpoint_stats(run.state))
    dups = duplicates.load(run.state)
    summary.duplicates_skipped, summary.duplicates_renamed = len(dups.skipped), len(dups.renamed)
    spill = spill_counts(run.state)
    summary.spill_inline_fallbacks = spill.get("inline_fallbacks", 0)
    summary.spill_free_failed = spill.get("free_failed", 0)
    summary.cross_node = cross_node(run.state)
    write_atomic(run.summary, msgspec.json.format(msgspec.json.encode(summary)))
    try:
        report_path: Path | None = write_report(run.root)
    except Exception:  # the report is a convenience: it never fails a finished run
        log.exception("report.html not written; try: python -m slurmgen.report %s", run.root)
        report_path = None
    print(f"{summary.tasks_total} records ({summary.tasks_ok} ok, {summary.tasks_rejected} rejected, "
          f"{summary.tasks_failed} failed), {summary.tokens_per_s:.0f} tokens/s; summary: {run.summary}"
          + (f"; report: {report_path}" if report_path else ""))
    return summary


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"signal {signum}")


def run_or_explain(conf: SlurmgenConf) -> int:
    """The command-line boundary: an error becomes one clear line and its exit code (slurmgen.exitcodes)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        summary = execute(conf)
    except SlurmgenError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("slurmgen: interrupted; every process of the run was stopped. Run again with the same "
              "run.dir to resume.", file=sys.stderr)
        return int(Exit.INTERRUPTED)
    except Terminated:
        print(f"slurmgen: terminated (SIGTERM); tasks in flight were drained for up to run.drain_s="
              f"{conf.run.drain_s:g} s and every process was stopped. Run again with the same run.dir to resume.",
              file=sys.stderr)
        return int(Exit.TERMINATED)
    if summary is not None and failure_rate_exceeded(summary, conf):
        print(f"slurmgen: error: the run finished, but {summary.tasks_failed} of {summary.tasks_total} tasks "
              f"failed, over run.max_failure_rate={conf.run.max_failure_rate}; first reason: {summary.first_failure} "
              f"(all reasons in {conf.run.dir}/summary.json); the records are written, the run is not usable as it "
              "is.", file=sys.stderr)
        return int(Exit.FAILURE_RATE)
    return int(Exit.OK)
