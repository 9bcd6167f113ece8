"""``slurmgen status RUN_DIR``: how a run is going, from its run directory alone.

Works while the run goes (peers rewrite their stats every few seconds) and after it
ended, locally and on SLURM (the run directory is on the shared filesystem).
"""

from __future__ import annotations

import collections
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec

from slurmgen.errors import SlurmgenError
from slurmgen.llm.types import EndpointStats
from slurmgen.protocol import Turn, Usage
from slurmgen.rundir import RunDir
from slurmgen.run.summary import pool_usage
from slurmgen.run.watchdog import StallReport

WINDOW_S = 30.0
S = TypeVar("S", bound=msgspec.Struct)


class _Rec(msgspec.Struct):
    status: str
    reason: str = ""
    usage: dict[str, Usage] = {}
    history: list[Turn] = []
    created_at: float = 0.0
    finished_at: float = 0.0


class _PeerStats(msgspec.Struct):
    peer_id: str
    shard: int
    in_flight: int = 0
    held: int = 0
    llm: dict[str, EndpointStats] = {}
    llm_outstanding: dict[str, int] = {}
    issued: int = 0
    reissued: int = 0
    duplicates: int = 0
    spill: dict[str, int] = {}
    cross_node: dict[str, int] = {}


class _PoolStats(msgspec.Struct):
    member_id: str
    open: int = 0
    opened: int = 0
    calls: int = 0
    dropped_idle: int = 0


@dataclass
class Status:
    done: int = 0
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    failed_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    tokens: int = 0
    recent_tokens: int = 0
    recent_tasks: int = 0
    first: float = 0.0
    last: float = 0.0
    role_latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    usages: list[dict[str, Usage]] = field(default_factory=list)  # per record, for the per-pool lines
    peers: list[_PeerStats] = field(default_factory=list)
    pools: list[_PoolStats] = field(default_factory=list)
    expected: int = 0
    stall: StallReport | None = None  # state/stall.json, when the run has not moved since


def collect(run: RunDir, now: float) -> Status:
    st = Status()
    decoder = msgspec.json.Decoder(_Rec)
    for path in sorted(run.results.glob("shard-*.jsonl")):
        data = path.read_bytes()
        for line in data[:data.rfind(b"\n") + 1].splitlines():  # a live run may be mid-line
            if line.strip():
                _add(st, decoder.decode(line), now)
    st.peers = _read_stats(run, "peer", _PeerStats)
    st.pools = _read_stats(run, "toolpool", _PoolStats)
    st.stall = _stall(run, st)
    return st


def _stall(run: RunDir, st: Status) -> StallReport | None:
    """The watchdog's report, unless a record was written after the stall began."""
    try:
        report = msgspec.json.decode((run.state / "stall.json").read_bytes(), type=StallReport)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return report if st.last <= report.since + 1e-3 else None


def _read_stats(run: RunDir, component: str, kind: type[S]) -> list[S]:
    out: list[S] = []
    for path in sorted(run.state.glob(f"stats-{component}-*.json")):
        try:
            out.append(msgspec.json.decode(path.read_bytes(), type=kind))
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue  # rewritten as we read, or from another version: skip it
    return out


def _add(st: Status, rec: _Rec, now: float) -> None:
    st.done += 1
    st.by_status[rec.status] += 1
    if rec.status == "failed":
        st.failed_reasons[rec.reason.split(":", 1)[0]] += 1
    tokens = sum(u.prompt_tokens + u.completion_tokens for u in rec.usage.values())
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


def render(st: Status, run: RunDir, now: float) -> str:
    live = [p for p in st.peers]
    in_flight = sum(p.in_flight for p in live)
    span = max(1e-6, st.last - st.first)
    lines = [f"run {run.root}"] + ([_stall_line(st.stall, run, now)] if st.stall is not None else [])
    lines.append(f"tasks: {st.done} done ({', '.join(f'{k} {v}' for k, v in sorted(st.by_status.items()))}), "
                 f"{in_flight} in flight" + (f", {st.expected} expected" if st.expected else ""))
    fallbacks = sum(p.spill.get("inline_fallbacks", 0) for p in live)
    if fallbacks:
        lines.append(f"spill: {fallbacks} times payloads went inline (store full; raise spill.max_bytes), "
                     f"{sum(p.spill.get('free_failed', 0) for p in live)} frees failed and were tried again")
    cross = _cross_node_line(live)
    if cross:
        lines.append(cross)
    if st.failed_reasons:
        lines.append("failed by reason: " + ", ".join(f"{k} {v}" for k, v in st.failed_reasons.most_common()))
    rate_now = st.recent_tokens / WINDOW_S
    lines.append(f"tokens/s: {rate_now:.0f} now (last {WINDOW_S:.0f} s), {st.tokens / span:.0f} overall")
    for role, lat in sorted(st.role_latency.items()):
        lines.append(f"  {role:<12} latency p50 {statistics.median(lat):.3f} s  max {max(lat):.3f} s  ({len(lat)} turns)")
    lines += _pool_lines(st)
    load: collections.Counter[str] = collections.Counter()
    for p in live:
        load.update(p.llm_outstanding)
    for url, n in sorted(load.items()):
        lines.append(f"  endpoint {url}: {n} requests outstanding")
    for pool in st.pools:
        lines.append(f"  tool pool {pool.member_id}: {pool.open} sessions open, {pool.opened} opened, "
                     f"{pool.calls} tool calls" + (f", {pool.dropped_idle} dropped idle" if pool.dropped_idle else ""))
    if st.expected and st.recent_tasks:
        remaining = max(0, st.expected - st.done)
        lines.append(f"ETA: {remaining / (st.recent_tasks / WINDOW_S):.0f} s")
    if run.summary.exists():
        lines.append(f"finished: {run.summary}")
    return "\n".join(lines)


def _pool_lines(st: Status) -> list[str]:
    """One line per LLM pool: its model, tokens, requests, errors and mean latency."""
    pools = pool_usage(st.usages, (s for p in st.peers for s in p.llm.values()))
    return [f"  LLM pool {name} ({u.model}): {u.prompt_tokens + u.completion_tokens} tokens, {u.attempts} requests, "
            f"{u.errors} errors ({u.rate_limited} rate-limited), {u.retries} retried, "
            f"mean latency {u.mean_latency_s:.3f} s"
            for name, u in pools.items()]


def _cross_node_line(peers: list[_PeerStats]) -> str:
    """What crossed the network between nodes (slurmgen.run.summary.CrossNode); "" on one node."""
    total: collections.Counter[str] = collections.Counter()
    for p in peers:
        total.update(p.cross_node)
    if not any(total.values()):
        return ""
    sent = total["bytes_sent"]
    return (f"between nodes: {sent} bytes sent peer to peer ({sent / (1 << 20):.1f} MiB, {total['frames_sent']} "
            f"frames); spilled payloads fetched: {total['spill_bytes_fetched']} bytes in {total['spill_fetches']} "
            f"fetches; tool pools: {total['tool_bytes']} bytes")


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


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: slurmgen status RUN_DIR")
        return 2
    run = RunDir(Path(argv[0]))
    if not run.config.exists():
        print(f"slurmgen status: {run.root} is not a run directory (no config.yaml)")
        return 2
    now = time.time()
    st = collect(run, now)
    st.expected = expected_tasks(run)
    print(render(st, run, now))
    return 0
