"""The driver's progress watchdog: a run that stops moving says so, and stops.

Progress is any change of the records written or of the peers' counters (tasks issued,
written, hops received other than re-issues, LLM replies answered, tool calls) in their
stats files (RUN/state/stats-peer-*.json, rewritten every run.lease_renew_s). Re-issues,
retries and failed LLM attempts are not progress: a task re-issued again and again into
a server that dies under it (or one that refuses it) is a stall. When nothing
changed for ``run.stall_s`` while tasks remain, the watchdog prints what the run waits
for and writes it to RUN/state/stall.json (``StallReport``); with
``run.stall_action=stop`` it raises ``RunStalled`` once nothing changed for
``run.stall_stop_s``. Any progress afterwards removes stall.json.

The watch starts with the first task issued in this invocation (a peer's stats file
written since the driver started, with ``issued > 0``) or the first record written: SLURM
jobs waiting in the queue or a server loading its weights are not a stall (those are
bounded by run.startup_timeout_s and llm.ready_timeout_s).
"""

from __future__ import annotations

import collections
import logging
import sys
import time
from pathlib import Path
from typing import Callable

import msgspec

from slurmgen.config.types import RunConf
from slurmgen.errors import ConfigError, RunStalled
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.runtime.stats import PeerStats, read_stats, stats_files

log = logging.getLogger("slurmgen.watchdog")

ACTIONS = ("report", "stop")
TAIL_BYTES = 64 * 1024  # read this much of the end of each log for its last error lines
ERROR_LINES = 3  # per log
MOVES = ("orch", "orch_home", "orch_local")  # received counters that mean a task moved (not Hold, Credit)


class PeerView(msgspec.Struct, kw_only=True):
    peer_id: str
    shard: int
    in_flight: int  # own tasks not written yet
    held: int  # tasks this peer works on or forwards right now
    oldest_in_flight: list[str]  # its own tasks, oldest issued first
    held_ids: list[str]
    llm_outstanding: dict[str, int]  # endpoint URL -> requests sent, not answered


class StallReport(msgspec.Struct, kw_only=True):
    """RUN/state/stall.json: what a stalled run was waiting for."""

    since: float  # wall time of the last progress
    reported_at: float
    stalled_s: float
    records: int
    expected: int
    action: str  # run.stall_action
    stop_after_s: float  # run.stall_stop_s
    waiting_tasks: list[str]  # the oldest tasks in flight, over every origin
    endpoints: dict[str, int]  # endpoint URL -> outstanding requests (every peer)
    peers: list[PeerView]
    log_errors: dict[str, list[str]]  # log file (relative to the run) -> its last error lines


def check_conf(conf: RunConf) -> None:
    if conf.stall_action not in ACTIONS:
        raise ConfigError(f"run.stall_action={conf.stall_action!r} is unknown; valid: {', '.join(ACTIONS)}")
    if conf.stall_s > 0 and conf.stall_stop_s < conf.stall_s:
        raise ConfigError(f"run.stall_stop_s={conf.stall_stop_s} is below run.stall_s={conf.stall_s}: "
                          "the stop limit is the longer one")


_UNREADABLE: set[str] = set()  # stats files already warned about


def read_peer_stats(run: RunDir) -> dict[str, tuple[float, PeerStats]]:
    """Stats file name -> (its mtime, its content)."""
    out: dict[str, tuple[float, PeerStats]] = {}
    for path in stats_files(run.state):
        try:
            out[path.name] = (path.stat().st_mtime, read_stats(path))
        except msgspec.ValidationError as exc:  # another version's: progress is then judged without it
            if path.name not in _UNREADABLE:
                _UNREADABLE.add(path.name)
                log.warning("%s does not match this slurmgen's peer stats (%s): the watchdog ignores it", path, exc)
        except (OSError, msgspec.DecodeError):  # after ValidationError, its subclass
            continue  # being replaced as we read
    return out


def _fingerprint(records: int, peers: dict[str, tuple[float, PeerStats]]) -> tuple[object, ...]:
    parts: list[object] = [records]
    for name, (_, p) in peers.items():
        answered = sum(s.ok for s in p.llm.values())
        moves = sum(p.received.get(k, 0) for k in MOVES) - p.reissued - p.retried  # a re-issue is a hop too
        parts.append((name, p.issued, p.written, moves, answered, sum(p.tools.values())))
    return tuple(parts)


def last_errors(path: Path, n: int = ERROR_LINES) -> list[str]:
    """The last ``n`` ERROR / CRITICAL / traceback-ending lines of a log (text or JSON lines)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - TAIL_BYTES))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    hits = [ln for ln in lines if any(m in ln for m in (" ERROR ", " CRITICAL ", '"level":"ERROR"',
                                                          '"level":"CRITICAL"', "Error: ", "Exception: "))]
    return [ln[-400:] for ln in hits[-n:]]


class Watchdog:
    def __init__(self, run: RunDir, conf: RunConf, expected: int, *, out: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.run, self.conf, self.expected, self.clock = run, conf, expected, clock
        self.out = out or (lambda text: print(text, file=sys.stderr, flush=True))
        self.path = run.state / "stall.json"
        self._print: tuple[object, ...] = ()
        self._moved = clock()
        self._moved_wall = self._started_wall = time.time()
        self._first_records: int | None = None
        self.armed = False
        self.report: StallReport | None = None

    def check(self, records: int) -> None:
        """Call every poll with the records written so far; raises RunStalled per run.stall_action."""
        if self.conf.stall_s <= 0:
            return
        peers = read_peer_stats(self.run)
        now = self.clock()
        if not self.armed:
            self.armed = self._started(records, peers)
            if not self.armed:
                self._moved, self._moved_wall = now, time.time()
                return
        fingerprint = _fingerprint(records, peers)
        if fingerprint != self._print:
            self._print, self._moved, self._moved_wall = fingerprint, now, time.time()
            self._recovered()
            return
        if self.expected and records >= self.expected:
            return  # nothing left to wait for (the shards' done markers end the run)
        idle = now - self._moved
        if idle >= self.conf.stall_s and self.report is None:
            self.report = self._write(records, peers, idle)
            self.out("slurmgen: " + self._describe(self.report, "stalled"))
        if self.conf.stall_action == "stop" and idle >= self.conf.stall_stop_s:
            report = self._write(records, peers, idle)
            raise RunStalled(self._describe(report, "stopped, stalled") + "; run again with the same run.dir to "
                             "resume (or set run.stall_action=report / raise run.stall_stop_s)")

    def _started(self, records: int, peers: dict[str, tuple[float, PeerStats]]) -> bool:
        if self._first_records is None:
            self._first_records = records
        return records > self._first_records or any(
            mtime >= self._started_wall - 1 and p.issued > 0 for mtime, p in peers.values())

    def _recovered(self) -> None:
        if self.report is not None:
            log.warning("progress again after a stall of %.0f s", time.time() - self.report.since)
            self.out("slurmgen: progress again; the stall is over")
            self.report = None
            self.path.unlink(missing_ok=True)

    def _write(self, records: int, peers: dict[str, tuple[float, PeerStats]], idle: float) -> StallReport:
        report = build_report(self.run, peers, records=records, expected=self.expected, idle=idle,
                              since=self._moved_wall, conf=self.conf)
        write_atomic(self.path, msgspec.json.format(msgspec.json.encode(report)))
        log.error("%s", self._describe(report, "stalled"))
        return report

    def _describe(self, r: StallReport, what: str) -> str:
        left = f"{r.expected - r.records} of {r.expected}" if r.expected else "some"
        busy = [f"{url} ({n} outstanding)" for url, n in r.endpoints.items() if n]
        text = (f"{what}: no task moved for {r.stalled_s:.0f} s (run.stall_s={self.conf.stall_s:g}) "
                f"with {left} tasks left; oldest in flight: {', '.join(r.waiting_tasks[:5]) or 'none'}; "
                f"endpoints: {', '.join(busy) or 'no request outstanding'}")
        errors = [f"{name}: {lines[-1]}" for name, lines in r.log_errors.items() if lines]
        if errors:
            text += "; last errors: " + " | ".join(errors[:4])
        text += f"; details: {self.path}"
        if what == "stalled" and r.action == "stop":
            text += f" (the run stops after run.stall_stop_s={r.stop_after_s:g} s without progress)"
        return text


def build_report(run: RunDir, peers: dict[str, tuple[float, PeerStats]], *, records: int, expected: int, idle: float,
                 since: float, conf: RunConf) -> StallReport:
    latest = _latest_per_shard(peers)
    endpoints: collections.Counter[str] = collections.Counter()
    for p in latest:
        endpoints.update(p.llm_outstanding)
    waiting = [tid for p in latest for tid in p.oldest_in_flight]
    logs = [p for p in sorted(run.logs.glob("*.log")) + sorted(run.logs.glob("*.out"))
            if not p.name.startswith("driver")]  # the driver's own lines are these
    errors = {str(path.relative_to(run.root)): lines for path in logs if (lines := last_errors(path))}
    return StallReport(
        since=since, reported_at=time.time(), stalled_s=round(idle, 1), records=records, expected=expected,
        action=conf.stall_action, stop_after_s=conf.stall_stop_s, waiting_tasks=waiting,
        endpoints=dict(endpoints), log_errors=errors,
        peers=[PeerView(peer_id=p.peer_id, shard=p.shard, in_flight=p.in_flight, held=p.held,
                        oldest_in_flight=p.oldest_in_flight, held_ids=p.held_ids,
                        llm_outstanding={u: n for u, n in p.llm_outstanding.items() if n}) for p in latest])


def _latest_per_shard(peers: dict[str, tuple[float, PeerStats]]) -> list[PeerStats]:
    """One stats file per incarnation: keep the most recently written of each shard."""
    best: dict[int, tuple[float, PeerStats]] = {}
    for mtime, p in peers.values():
        if p.shard not in best or mtime > best[p.shard][0]:
            best[p.shard] = (mtime, p)
    return [p for _, p in sorted(best.values(), key=lambda mp: mp[1].shard)]
