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
from pathlib import Path
from typing import Protocol

import msgspec

from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError, DatasetError, EarlyStop, SlurmgenError, StartupError
from slurmgen.exitcodes import Exit
from slurmgen.input import duplicates
from slurmgen.proc.logs import setup_logging
from slurmgen.proc.metrics import DriverMetrics, Exporter
from slurmgen.report import write_report
from slurmgen.run import lock
from slurmgen.run.launcher import make_launcher
from slurmgen.run.plan import make_plan
from slurmgen.run.prepare import prepare
from slurmgen.run.progress import Counts, ResultsTail
from slurmgen.run.summary import Summary, cross_node, endpoint_stats, pool_usage, read_records, spill_counts, summarize
from slurmgen.run.ui import ProgressBar
from slurmgen.run.validate import report as validation_report
from slurmgen.run.validate import validate
from slurmgen.run.watchdog import Watchdog
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.spill.paths import spill_root
from slurmgen.transport import hosts, ports
from slurmgen.workflow import Workflow

log = logging.getLogger("slurmgen.driver")

POLL_S = 0.25


class Terminated(BaseException):
    """SIGTERM reached the driver (a BaseException, like KeyboardInterrupt: nothing may swallow it)."""


def _clear_stale(run: RunDir, shards: int) -> None:
    run.registry_address.unlink(missing_ok=True)
    run.refused.unlink(missing_ok=True)
    for i in range(max(shards, len(list(run.state.glob("shard-*.done"))))):
        run.shard_done(i).unlink(missing_ok=True)


class Watcher(Protocol):
    def check(self) -> None:
        """Raise RunCrashed (or another SlurmgenError) when the run cannot go on."""


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
        lock.refresh(run)
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


def execute(conf: SlurmgenConf) -> Summary | None:
    if conf.run.validate_only:
        result = validate(conf)
        print(validation_report(result, conf.dataset.path))
        if not result.ok:
            raise DatasetError(f"{len(result.bad)} bad rows (listed above); fix them or let them become failed records")
        print("config and dataset are valid; nothing was started")
        return None
    run, workflow, expected, holder = prepare(conf)
    try:
        return _run(conf, run, workflow, expected)
    finally:
        lock.release(run, holder)


def _run(conf: SlurmgenConf, run: RunDir, workflow: Workflow, expected: int) -> Summary:
    setup_logging(run.log("driver"), fmt=conf.run.log_format)
    if conf.cluster.port_range:  # the driver's own /metrics too
        os.environ[ports.ENV] = conf.cluster.port_range
    started = time.time()
    plan = make_plan(conf, run.root)
    launcher = make_launcher(conf, run)
    _clear_stale(run, conf.run.peers)
    initial = ResultsTail(run.results).poll()
    bar = ProgressBar(expected, initial, enabled=conf.run.progress, every_s=conf.run.progress_every_s)
    exporter = Exporter("driver", run.root, hosts.default_host(conf.cluster.kind, conf.cluster.host, conf.cluster.interface),
                        kind="driver", enabled=conf.run.metrics, sd_extra_dir=conf.run.metrics_sd_dir or None)
    metrics = exporter.driver(expected, initial)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        launcher.start(plan.registry)
        _wait_registry(run, launcher, conf.run.startup_timeout_s)
        launcher.start_all([*plan.services, *plan.peers])
        follow(run, launcher, conf, bar, expected, metrics)
        if conf.run.metrics and conf.run.metrics_linger_s > 0:
            time.sleep(conf.run.metrics_linger_s)  # the final counts, for the last scrape
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the stop short
        bar.close()
        exporter.close()
        for component in ("peer", "toolpool", "llm", "registry"):
            launcher.stop(component)
        signal.signal(signal.SIGTERM, previous)
        if conf.cluster.kind == "local":  # every spill store of the run is on this machine
            shutil.rmtree(spill_root(conf.spill, run.root), ignore_errors=True)
    return _summarize(run, workflow, expected, started)


def _summarize(run: RunDir, workflow: Workflow, expected: int, started: float) -> Summary:
    """summary.json and report.html from the records (and the state files) of the run."""
    records = list(read_records(run.results))
    summary = summarize(records, workflow=workflow.name, started_at=started,
                        wall_s=time.time() - started, expected=expected, metrics=workflow.metrics)
    summary.measured_from = started
    summary.launched_at = process_started_at()
    summary.usage_by_pool = pool_usage((r.usage for r in records), endpoint_stats(run.state))
    dups = duplicates.load(run.state)
    summary.duplicates_skipped, summary.duplicates_renamed = len(dups.skipped), len(dups.renamed)
    spill = spill_counts(run.state)
    summary.spill_inline_fallbacks = spill.get("inline_fallbacks", 0)
    summary.spill_free_failed = spill.get("free_failed", 0)
    summary.cross_node = cross_node(run.state)
    keep_measured(summary, run.summary)
    write_atomic(run.summary, msgspec.json.format(msgspec.json.encode(summary)))
    report_at = time.time()
    try:
        report_path: Path | None = write_report(run.root)
    except Exception:  # the report is a convenience: it never fails a finished run
        log.exception("report.html not written; try: python -m slurmgen.report %s", run.root)
        report_path = None
    if summary.measured_from == started:  # what the report took, for slurmgen plan's model of a run
        summary.report_s = round(time.time() - report_at, 3)
        write_atomic(run.summary, msgspec.json.format(msgspec.json.encode(summary)))
    print(f"{summary.tasks_total} records ({summary.tasks_ok} ok, {summary.tasks_rejected} rejected, "
          f"{summary.tasks_failed} failed), {summary.tokens_per_s:.0f} tokens/s ({throughput_span(summary, started)}); "
          f"summary: {run.summary}" + (f"; report: {report_path}" if report_path else ""))
    return summary


def process_started_at() -> float:
    """When this process started (wall clock), from /proc; 0.0 where there is no /proc."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0
    return round(boot + ticks / os.sysconf("SC_CLK_TCK"), 3)


def keep_measured(summary: Summary, previous: Path) -> None:
    """A rerun that finished no task measured nothing: keep the throughput its last measuring run wrote."""
    if summary.tasks_per_s > 0 or not previous.exists():
        return
    try:
        old = msgspec.json.decode(previous.read_bytes(), type=Summary)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return
    if old.tasks_per_s > 0:
        summary.wall_s, summary.tokens_per_s, summary.tasks_per_s = old.wall_s, old.tokens_per_s, old.tasks_per_s
        summary.measured_from, summary.launched_at, summary.report_s = old.measured_from, old.launched_at, old.report_s


def throughput_span(summary: Summary, started: float) -> str:
    """What span summary.json's tokens/s is over, in words."""
    own = abs(summary.measured_from - started) < 1e-6
    when = "" if own else " of the run started " + time.strftime("%Y-%m-%d %H:%M:%S",
                                                                   time.localtime(summary.measured_from))
    return f"over the driver's wall time{when}, {summary.wall_s:.1f} s, startup and stop included"


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
    if summary is not None and summary.metrics_error:
        print(f"slurmgen: error: the run finished and every record is written, but the workflow's metrics "
              f"function failed — a bug in the workflow, not in slurmgen: {summary.metrics_error}. summary.json "
              "and report.html are written without its metrics (metrics_error names it); fix the function and "
              "run the same command again: it recomputes them.", file=sys.stderr)
        return int(Exit.METRICS_FAILED)
    return int(Exit.OK)
