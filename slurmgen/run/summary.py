"""summary.json: totals over every record of the run, plus the workflow's metrics."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec

from slurmgen.llm.types import EndpointStats
from slurmgen.protocol import Failure, Status, Usage
from slurmgen.records import Record, read_shard, reason_class, shard_paths
from slurmgen.runtime.stats import CrossNode, read_all


class PoolUsage(msgspec.Struct, kw_only=True):
    """One LLM pool's share of the run: tokens from the records, attempts from the peers' clients."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # requests the records count (answered, in tasks that were written)
    attempts: int = 0  # every attempt the peers' clients sent (retries and unwritten tasks too)
    answered: int = 0  # attempts answered with a completion
    errors: int = 0  # attempts that failed
    retries: int = 0  # failed attempts then retried
    rate_limited: int = 0  # attempts answered 429 (in errors too)
    latency_s: float = 0.0  # summed over answered attempts, request sent to reply read
    mean_latency_s: float = 0.0
    tokens_answered: int = 0  # prompt + completion tokens of every answered attempt (the clients' live counters)

    def add_usage(self, u: Usage) -> None:
        self.model = u.model or self.model
        self.prompt_tokens += u.prompt_tokens
        self.completion_tokens += u.completion_tokens
        self.requests += u.requests

    def add_endpoint(self, s: EndpointStats) -> None:
        self.model = self.model or s.model
        self.attempts += s.requests
        self.answered += s.ok
        self.errors += s.errors
        self.retries += s.retries
        self.rate_limited += s.rate_limited
        self.tokens_answered += s.prompt_tokens + s.completion_tokens
        self.latency_s = round(self.latency_s + s.latency_s, 6)
        self.mean_latency_s = round(self.latency_s / self.answered, 4) if self.answered else 0.0


class Summary(msgspec.Struct, kw_only=True):
    workflow: str
    tasks_total: int
    tasks_ok: int
    tasks_rejected: int
    tasks_failed: int
    prompt_tokens: int
    completion_tokens: int
    wall_s: float  # the driver's wall time, startup and stop included (this invocation; see measured_from)
    tokens_per_s: float  # tokens of the tasks finished in that invocation / wall_s
    tasks_per_s: float
    reasons: dict[str, int]  # per reason class (a failure's "<class>: <message>" counts under its class)
    usage_by_role: dict[str, Usage]
    metrics: dict[str, float]
    usage_by_pool: dict[str, PoolUsage] = {}  # per LLM pool (slurmgen.config.pools)
    # per role: LLM replies cut at max_tokens (finish_reason "length"); roles with none left out
    truncated_by_role: dict[str, int] = {}
    first_failure: str = ""  # the reason of the first task that failed (bad input rows only if nothing else failed)
    reason_examples: dict[str, list[str]] = {}  # per failure class: up to 3 distinct whole reasons
    measured_from: float = 0.0  # when the invocation that measured wall_s and the rates started (a rerun
    # that finished no task keeps the previous figures and this time)
    metrics_error: str = ""  # the workflow's metrics() raised this: "metrics" is empty (a bug in the workflow)
    expected_tasks: int = 0
    duplicates_skipped: int = 0  # input rows not run: their id repeats an earlier row's (dataset.on_duplicate=skip)
    duplicates_renamed: int = 0  # input rows run as id#2, id#3, ... (dataset.on_duplicate=suffix)
    # the peers' spill counters (state/stats-peer-*.json, every incarnation of the run)
    spill_inline_fallbacks: int = 0  # times a full store sent a task's payloads inline
    spill_free_failed: int = 0  # delete transactions that failed and were tried again
    cross_node: CrossNode = msgspec.field(default_factory=CrossNode)
    # the phases slurmgen plan models (this invocation): the driver process started (python, Hydra:
    # before measured_from), and report.html took report_s after summary.json was first written
    launched_at: float = 0.0
    report_s: float = 0.0


def spill_counts(state: Path) -> dict[str, int]:
    """Sum of the peers' spill counters over their stats files."""
    total: collections.Counter[str] = collections.Counter()
    for stats in read_all(state):
        total.update(stats.spill)
    return dict(total)


def endpoint_stats(state: Path) -> list[EndpointStats]:
    """The peers' per-endpoint LLM counters (state/stats-peer-*.json, every incarnation)."""
    return [s for stats in read_all(state) for s in stats.llm.values()]


def pool_usage(usages: Iterable[dict[str, Usage]], endpoints: Iterable[EndpointStats]) -> dict[str, PoolUsage]:
    """Per LLM pool: tokens from the records' usage (one dict per record), attempts, errors and
    latency from the clients' endpoint counters."""
    pools: dict[str, PoolUsage] = collections.defaultdict(PoolUsage)
    for usage in usages:
        for u in usage.values():
            if u.requests:
                pools[u.pool or "default"].add_usage(u)
    for s in endpoints:
        pools[s.pool or "default"].add_endpoint(s)
    return dict(sorted(pools.items()))


def cross_node(state: Path) -> CrossNode:
    """Sum of the peers' cross-node counters over their stats files."""
    total = CrossNode()
    for stats in read_all(state):
        total.add(stats.cross_node)
    return total


def read_records(results: Path) -> Iterator[Record]:
    """Every record of the run, shard by shard (``records.read_shard``)."""
    for path in shard_paths(results):
        yield from read_shard(path)


def examples(failed: list[Record], per_class: int = 3) -> dict[str, list[str]]:
    """Up to ``per_class`` distinct whole reasons per failure class, in the order they were written."""
    out: dict[str, list[str]] = collections.defaultdict(list)
    for r in failed:
        seen = out[reason_class(r.status, r.reason)]
        if len(seen) < per_class and r.reason not in seen:
            seen.append(r.reason)
    return dict(out)


def summarize(records: list[Record], *, workflow: str, started_at: float, wall_s: float, expected: int,
              metrics: Callable[[list[Record]], dict[str, float]]) -> Summary:
    by_status = collections.Counter(r.status for r in records)
    reasons = collections.Counter(reason_class(r.status, r.reason) for r in records)
    roles: dict[str, Usage] = collections.defaultdict(Usage)
    recent_tokens = 0
    recent_tasks = 0
    for r in records:
        for role, u in r.usage.items():
            acc = roles[role]
            acc.prompt_tokens += u.prompt_tokens
            acc.completion_tokens += u.completion_tokens
            acc.requests += u.requests
            acc.truncated += u.truncated
        if r.finished_at >= started_at:
            recent_tasks += 1
            recent_tokens += sum(u.prompt_tokens + u.completion_tokens for u in r.usage.values())
    failed = [r for r in records if r.status is Status.FAILED]
    ran = [r for r in failed if r.failure is not Failure.BAD_INPUT] or failed  # a role's failure first
    first = min(ran, key=lambda r: r.finished_at).reason if ran else ""
    prompt = sum(u.prompt_tokens for u in roles.values())
    completion = sum(u.completion_tokens for u in roles.values())
    summary = Summary(
        workflow=workflow, tasks_total=len(records), tasks_ok=by_status[Status.OK],
        tasks_rejected=by_status[Status.REJECTED], tasks_failed=by_status[Status.FAILED],
        prompt_tokens=prompt, completion_tokens=completion, wall_s=round(wall_s, 3),
        tokens_per_s=round(recent_tokens / wall_s, 2) if wall_s > 0 else 0.0,
        tasks_per_s=round(recent_tasks / wall_s, 3) if wall_s > 0 else 0.0,
        reasons=dict(reasons), usage_by_role=dict(roles), metrics={}, expected_tasks=expected,
        first_failure=first, reason_examples=examples(failed),
        truncated_by_role={role: u.truncated for role, u in roles.items() if u.truncated},
    )
    summary.metrics, summary.metrics_error = workflow_metrics(metrics, records)
    return summary


def workflow_metrics(fn: Callable[[list[Record]], dict[str, float]],
                     records: list[Record]) -> tuple[dict[str, float], str]:
    """The workflow's metrics(records), or ({}, what it raised): a bug in a workflow's metrics
    costs neither summary.json nor report.html."""
    try:
        return dict(fn(records)), ""
    except Exception as exc:  # noqa: BLE001 - the user's code: any exception is its bug, named as such
        where = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"
        return {}, f"workflow.metrics={where} raised {type(exc).__name__}: {exc}"
