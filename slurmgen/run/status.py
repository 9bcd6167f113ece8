"""``slurmgen status RUN_DIR``: how a run is going, from its run directory alone.

Works while the run goes (peers rewrite their stats every few seconds) and after it
ended, locally and on SLURM (the run directory is on the shared filesystem).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from slurmgen.errors import SlurmgenError
from slurmgen.llm.pressure import KVAdmission
from slurmgen.protocol import Failure, Usage
from slurmgen.protocol import Status as TaskStatus
from slurmgen.records import Record, read_shard, shard_paths
from slurmgen.run.summary import PoolUsage, pool_usage
from slurmgen.run.watchdog import StallReport
from slurmgen.rundir import RunDir
from slurmgen.runtime.stats import CrossNode, PeerStats, read_all

WINDOW_S = 30.0


class _PoolStats(msgspec.Struct):
    member_id: str
    open: int = 0
    opened: int = 0
    calls: int = 0
    dropped_idle: int = 0
    queued_now: int = 0  # opens waiting in the member's queue now
    queued: int = 0  # opens that waited, in all
    refused: int = 0  # opens refused for want of room (their client asked another member)


@dataclass
class Status:
    done: int = 0
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    failed_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    truncated: collections.Counter[str] = field(default_factory=collections.Counter)  # role -> replies cut
    tokens: int = 0
    recent_tokens: int = 0
    recent_tasks: int = 0
    first: float = 0.0
    last: float = 0.0
    role_latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    usages: list[dict[str, Usage]] = field(default_factory=list)  # per record, for the per-pool lines
    peers: list[PeerStats] = field(default_factory=list)
    pools: list[_PoolStats] = field(default_factory=list)
    expected: int = 0
    stall: StallReport | None = None  # state/stall.json, when the run has not moved since


def collect(run: RunDir, now: float) -> Status:
    st = Status()
    for path in shard_paths(run.results):
        for rec in read_shard(path):  # a live run may be mid-line: its last line is left out
            _add(st, rec, now)
    st.peers = list(read_all(run.state))
    st.pools = _read_pool_stats(run)
    st.stall = _stall(run, st)
    return st


def _stall(run: RunDir, st: Status) -> StallReport | None:
    """The watchdog's report, unless a record was written after the stall began."""
    try:
        report = msgspec.json.decode((run.state / "stall.json").read_bytes(), type=StallReport)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return report if st.last <= report.since + 1e-3 else None


def _read_pool_stats(run: RunDir) -> list[_PoolStats]:
    out: list[_PoolStats] = []
    for path in sorted(run.state.glob("stats-toolpool-*.json")):
        try:
            out.append(msgspec.json.decode(path.read_bytes(), type=_PoolStats))
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue  # rewritten as we read, or from another version: skip it
    return out


def _add(st: Status, rec: Record, now: float) -> None:
    st.done += 1
    st.by_status[rec.status] += 1
    if rec.status is TaskStatus.FAILED:
        st.failed_reasons[str(Failure.of(rec.reason) or "other")] += 1
    tokens = sum(u.prompt_tokens + u.completion_tokens for u in rec.usage.values())
    st.truncated.update({role: u.truncated for role, u in rec.usage.items() if u.truncated})
    st.tokens += tokens
    st.usages.append(rec.usage)
    if rec.finished_at:
        st.first = min(st.first or rec.finished_at, rec.created_at or rec.finished_at)
        st.last = max(st.last, rec.finished_at)
        if now - rec.finished_at <= WINDOW_S:
            st.recent_tokens += tokens
            st.recent_tasks += 1
    previous = rec.created_at
    for turn in rec.history:
        if turn.at and previous:
            st.role_latency[turn.role].append(turn.at - previous)
        previous = turn.at or previous


class Throughput(msgspec.Struct, kw_only=True):
    """tokens/s over three spans, each named: status's two and summary.json's."""

    now: float  # tokens of the records finished in the last window_s
    window_s: float
    records_span: float  # tokens in records / (first task started -> last record written)
    records_span_s: float
    driver_wall: float | None = None  # summary.json's tokens_per_s: over the driver's wall time, startup included
    driver_wall_s: float | None = None


class RoleLatency(msgspec.Struct):
    p50_s: float
    max_s: float
    turns: int


class StatusDoc(msgspec.Struct, kw_only=True):
    """What ``slurmgen status RUN --output json`` prints; the text form is drawn from it."""

    run: str
    done: int
    by_status: dict[str, int]
    in_flight: int
    expected: int
    failed_by_reason: dict[str, int]  # per failure class
    truncated_by_role: dict[str, int]  # LLM replies cut at max_tokens (finish_reason "length"), per role
    tokens_in_records: int  # prompt + completion tokens of the records written
    tokens_answered: int  # every answered LLM attempt so far (the peers' live counters; unwritten tasks too)
    llm_requests: int  # attempts the peers' clients sent
    tokens_per_s: Throughput
    role_latency: dict[str, RoleLatency]
    llm_pools: dict[str, PoolUsage]
    endpoints_outstanding: dict[str, int]
    tool_pools: list[_PoolStats]
    spill: dict[str, int]
    cross_node: CrossNode
    eta_s: float | None = None
    stalled: StallReport | None = None
    kv_admission: KVAdmission | None = None  # llm.scheduling_policy=priority: the peers' gates together
    summary: str | None = None  # summary.json, once the run finished


def document(st: Status, run: RunDir, now: float) -> StatusDoc:
    pools = pool_usage(st.usages, (s for p in st.peers for s in p.llm.values()))
    load: collections.Counter[str] = collections.Counter()
    spill: collections.Counter[str] = collections.Counter()
    cross = CrossNode()
    for p in st.peers:
        load.update(p.llm_outstanding)
        spill.update(p.spill)
        cross.add(p.cross_node)
    rates = Throughput(now=round(st.recent_tokens / WINDOW_S, 1), window_s=WINDOW_S,
                       records_span=round(st.tokens / max(1e-6, st.last - st.first), 1) if st.last else 0.0,
                       records_span_s=round(max(0.0, st.last - st.first), 3))
    rates.driver_wall, rates.driver_wall_s = _driver_rate(run)
    eta = (max(0, st.expected - st.done) / (st.recent_tasks / WINDOW_S)) if st.expected and st.recent_tasks else None
    return StatusDoc(
        run=str(run.root), done=st.done, by_status=dict(sorted(st.by_status.items())),
        in_flight=sum(p.in_flight for p in st.peers), expected=st.expected,
        failed_by_reason=dict(st.failed_reasons.most_common()), tokens_in_records=st.tokens,
        truncated_by_role=dict(sorted(st.truncated.items())),
        tokens_answered=sum(u.tokens_answered for u in pools.values()),
        llm_requests=sum(u.attempts for u in pools.values()), tokens_per_s=rates,
        role_latency={role: RoleLatency(round(statistics.median(lat), 4), round(max(lat), 4), len(lat))
                      for role, lat in sorted(st.role_latency.items())},
        llm_pools=pools, endpoints_outstanding=dict(sorted(load.items())), tool_pools=st.pools,
        spill=dict(spill), cross_node=cross, eta_s=round(eta, 1) if eta is not None else None,
        stalled=st.stall, summary=str(run.summary) if run.summary.exists() else None,
        kv_admission=_kv_admission([p.kv_admission for p in st.peers if p.kv_admission is not None]))


def _kv_admission(gates: list[KVAdmission]) -> KVAdmission | None:
    """The peers' KV admission gates as one: seconds held summed, footprints averaged over tasks."""
    if not gates:
        return None
    ended = sum(g.tasks_ended for g in gates)
    expected = sum(g.expected_tokens * g.tasks_ended for g in gates) / ended if ended else 0.0
    return KVAdmission(held_s=round(sum(g.held_s for g in gates), 3), capacity_tokens=max(g.capacity_tokens
                       for g in gates), share=round(sum(g.share for g in gates), 3), expected_tokens=int(expected),
                       tasks_ended=ended)


def _driver_rate(run: RunDir) -> tuple[float | None, float | None]:
    try:
        summary = msgspec.json.decode(run.summary.read_bytes(), type=_SummaryRate)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None, None
    return summary.tokens_per_s, summary.wall_s


class _SummaryRate(msgspec.Struct):
    tokens_per_s: float
    wall_s: float


def render(st: Status, run: RunDir, now: float) -> str:
    return render_doc(document(st, run, now), run, now)


def render_doc(doc: StatusDoc, run: RunDir, now: float) -> str:
    lines = [f"run {doc.run}"] + ([_stall_line(doc.stalled, run, now)] if doc.stalled is not None else [])
    lines.append(f"tasks: {doc.done} done ({', '.join(f'{k} {v}' for k, v in doc.by_status.items())}), "
                 f"{doc.in_flight} in flight" + (f", {doc.expected} expected" if doc.expected else ""))
    if doc.spill.get("inline_fallbacks", 0):
        lines.append(f"spill: {doc.spill['inline_fallbacks']} times payloads went inline (store full; raise "
                     f"spill.max_bytes), {doc.spill.get('free_failed', 0)} frees failed and were tried again")
    lines += filter(None, [_cross_node_line(doc.cross_node)])
    if doc.failed_by_reason:
        lines.append("failed by reason: " + ", ".join(f"{k} {v}" for k, v in doc.failed_by_reason.items()))
    if doc.truncated_by_role:
        lines.append("replies cut at max_tokens: " + ", ".join(f"{k} {v}" for k, v in doc.truncated_by_role.items()))
    lines.append(f"tokens: {doc.tokens_in_records} in records written; {doc.tokens_answered} answered so far in "
                 f"{doc.llm_requests} LLM requests (the peers' live counters, tasks in flight too)")
    lines += _rate_lines(doc.tokens_per_s)
    for role, lat in doc.role_latency.items():
        lines.append(f"  {role:<12} latency p50 {lat.p50_s:.3f} s  max {lat.max_s:.3f} s  ({lat.turns} turns)")
    lines += [f"  LLM pool {name} ({u.model}): {u.prompt_tokens + u.completion_tokens} tokens in records, "
              f"{u.tokens_answered} answered, {u.attempts} requests, {u.errors} errors ({u.rate_limited} "
              f"rate-limited), {u.retries} retried, mean latency {u.mean_latency_s:.3f} s"
              for name, u in doc.llm_pools.items()]
    lines += [f"  endpoint {url}: {n} requests outstanding" for url, n in doc.endpoints_outstanding.items()]
    for pool in doc.tool_pools:
        lines.append(f"  tool pool {pool.member_id}: {pool.open} sessions open, {pool.opened} opened, "
                     f"{pool.calls} tool calls, {pool.queued_now} queued now ({pool.queued} queued in all), "
                     f"{pool.refused} refused" + (f", {pool.dropped_idle} dropped idle" if pool.dropped_idle else ""))
    if doc.kv_admission is not None:
        kv = doc.kv_admission
        footprint = (f"; a task's conversations hold ~{kv.expected_tokens} tokens of KV (mean of {kv.tasks_ended} "
                     f"ended)" if kv.tasks_ended else "")
        lines.append(f"  KV admission: new tasks held {kv.held_s:.1f} s in all{footprint}; the replicas hold "
                     f"{kv.capacity_tokens} tokens")
    if doc.eta_s is not None:
        lines.append(f"ETA: {doc.eta_s:.0f} s")
    if doc.summary:
        lines.append(f"finished: {doc.summary}")
    return "\n".join(lines)


def _rate_lines(r: Throughput) -> list[str]:
    lines = [(f"tokens/s: {r.now:.0f} now (records of the last {r.window_s:.0f} s), {r.records_span:.0f} over the "
              f"records' span (first task started -> last record written, {r.records_span_s:.1f} s)")]
    if r.driver_wall is not None:
        lines.append(f"tokens/s in summary.json: {r.driver_wall:.0f} over the driver's wall time "
                     f"({r.driver_wall_s or 0:.1f} s, startup and stop included)")
    return lines


def _cross_node_line(total: CrossNode) -> str:
    """What crossed the network between nodes; "" on one node."""
    if total == CrossNode():
        return ""
    sent = total.bytes_sent
    return (f"between nodes: {sent} bytes sent peer to peer ({sent / (1 << 20):.1f} MiB, {total.frames_sent} "
            f"frames); spilled payloads fetched: {total.spill_bytes_fetched} bytes in "
            f"{total.spill_fetches} fetches; tool pools: {total.tool_bytes} bytes")


def _stall_line(r: StallReport, run: RunDir, now: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.since))
    busy = ", ".join(f"{u} ({n})" for u, n in r.endpoints.items() if n) or "none"
    return (f"STALLED since {when} ({now - r.since:.0f} s without progress): oldest tasks in flight "
            f"{', '.join(r.waiting_tasks[:5]) or 'none'}; outstanding LLM requests {busy}; "
            f"see {run.state / 'stall.json'}")


def expected_tasks(run: RunDir) -> int:
    from slurmgen.config.load import load_run_config
    from slurmgen.input.dataset import count_rows
    from slurmgen.input.duplicates import load

    try:
        conf = load_run_config(run.config)
        rows = count_rows(Path(conf.dataset.path), conf.dataset.limit) - len(load(run.state).skipped)
        return rows * conf.run.trials
    except (OSError, SlurmgenError):  # a status display must not fail on a half-written run
        return 0


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="slurmgen status", description="How a run is going (or went), from its run "
                                 "directory alone: tasks by status, failures by class, tokens and tokens/s, latency, "
                                 "LLM pools, tool pools, ETA.")
    ap.add_argument("run_dir", help="the run directory (run.dir), live or finished")
    ap.add_argument("--output", choices=("text", "json"), default="text",
                    help="json: one JSON document (the same figures as the text) for scripts")
    return ap.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    run = RunDir(Path(args.run_dir))
    if not run.config.exists():
        print(f"slurmgen status: {run.root} is not a run directory (no config.yaml)")
        return 2
    now = time.time()
    st = collect(run, now)
    st.expected = expected_tasks(run)
    doc = document(st, run, now)
    as_json = args.output == "json"
    print(msgspec.json.format(msgspec.json.encode(doc)).decode() if as_json else render_doc(doc, run, now))
    return 0
