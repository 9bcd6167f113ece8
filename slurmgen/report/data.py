"""What the report shows, computed from the run directory alone (records and summary.json)."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from slurmgen.protocol import Status, Usage
from slurmgen.records import reason_class
from slurmgen.rundir import RunDir

MAX_QUALITY_KEYS = 6
_NICE_WIDTHS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600,
                43200, 86400)


class _Turn(msgspec.Struct):
    role: str
    at: float = 0.0


class _Rec(msgspec.Struct):
    """The fields of a record the report reads (``output`` stays undecoded)."""

    status: Status
    reason: str = ""
    usage: dict[str, Usage] = {}
    metrics: dict[str, float] = {}
    history: list[_Turn] = []
    created_at: float = 0.0
    finished_at: float = 0.0
    output: msgspec.Raw = msgspec.Raw(b"null")


@dataclass
class Throughput:
    width_s: float = 0.0
    starts: list[float] = field(default_factory=list)  # bucket start, seconds since the first task
    tokens_per_s: list[float] = field(default_factory=list)
    tasks_per_s: list[float] = field(default_factory=list)


@dataclass
class ReportData:
    run_dir: Path
    summary: dict[str, Any] | None
    records: int = 0
    unreadable_lines: int = 0
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)  # (status, reason)
    usage_by_role: dict[str, Usage] = field(default_factory=dict)
    role_latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    quality: dict[str, list[float]] = field(default_factory=dict)
    quality_source: str = ""  # "metrics" | "output" | ""
    throughput: Throughput = field(default_factory=Throughput)
    first: float = 0.0
    last: float = 0.0

    @property
    def workflow(self) -> str:
        return str((self.summary or {}).get("workflow", ""))


def bucket_width(span_s: float, target: int = 40) -> float:
    """A round bucket width giving about ``target`` buckets over ``span_s``."""
    want = max(span_s, 0.01) / target
    return next((float(w) for w in _NICE_WIDTHS if w >= want), float(math.ceil(want / 86400) * 86400))


def throughput(finished: list[tuple[float, int]], origin: float, target: int = 40) -> Throughput:
    """Tokens/s and tasks/s per time bucket, from (finished_at, tokens) pairs."""
    if not finished:
        return Throughput()
    span = max(t for t, _ in finished) - origin
    width = bucket_width(span, target)
    n = int(max(0.0, span) // width) + 1
    tokens = [0.0] * n
    tasks = [0.0] * n
    for t, tok in finished:
        i = min(n - 1, max(0, int((t - origin) // width)))
        tokens[i] += tok
        tasks[i] += 1
    return Throughput(width_s=width, starts=[i * width for i in range(n)],
                      tokens_per_s=[x / width for x in tokens], tasks_per_s=[x / width for x in tasks])


def _numbers(value: Any, prefix: str, out: dict[str, float], depth: int) -> None:
    if isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, (int, float)):
        if math.isfinite(value):
            out[prefix] = float(value)
    elif isinstance(value, dict) and depth > 0:
        for k, v in value.items():
            _numbers(v, f"{prefix}.{k}" if prefix else str(k), out, depth - 1)


def output_numbers(raw: msgspec.Raw) -> dict[str, float]:
    """Numeric fields of a record's output, two levels deep (nr: ``en``, ``scores.criteria_1``...)."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return {}
    out: dict[str, float] = {}
    if isinstance(value, dict):
        _numbers(value, "", out, 2)
    return out


def load(run_dir: Path) -> ReportData:
    run = RunDir(Path(run_dir))
    summary = None
    if run.summary.exists():
        try:
            summary = msgspec.json.decode(run.summary.read_bytes())
        except msgspec.DecodeError:
            summary = None
    data = ReportData(run_dir=run.root, summary=summary)
    decoder = msgspec.json.Decoder(_Rec)
    finished: list[tuple[float, int]] = []
    metrics: dict[str, list[float]] = collections.defaultdict(list)
    outputs: list[dict[str, float]] = []  # numeric output fields, while no record has metrics
    roles: dict[str, Usage] = collections.defaultdict(Usage)
    for path in sorted(run.results.glob("shard-*.jsonl")):
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    rec = decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    data.unreadable_lines += 1  # a line being written while a live run is read
                    continue
                _add(data, rec, finished, metrics, outputs, roles)
    data.usage_by_role = dict(roles)
    origin = data.first or (min(t for t, _ in finished) if finished else 0.0)
    data.throughput = throughput(finished, origin)
    if metrics:
        data.quality, data.quality_source = _pick(metrics), "metrics"
    else:
        from_output: dict[str, list[float]] = collections.defaultdict(list)
        for numbers in outputs:
            for k, v in numbers.items():
                from_output[k].append(v)
        if from_output:
            data.quality, data.quality_source = _pick(from_output), "output"
    return data


def _add(data: ReportData, rec: _Rec, finished: list[tuple[float, int]], metrics: dict[str, list[float]],
         outputs: list[dict[str, float]], roles: dict[str, Usage]) -> None:
    data.records += 1
    data.by_status[rec.status] += 1
    data.reasons[(rec.status, reason_class(rec.status, rec.reason))] += 1
    tokens = 0
    for role, u in rec.usage.items():
        acc = roles[role]
        acc.prompt_tokens += u.prompt_tokens
        acc.completion_tokens += u.completion_tokens
        acc.requests += u.requests
        tokens += u.prompt_tokens + u.completion_tokens
    if rec.finished_at:
        start = rec.created_at or rec.finished_at
        data.first = min(data.first or start, start)
        data.last = max(data.last, rec.finished_at)
        finished.append((rec.finished_at, tokens))
    previous = rec.created_at
    for turn in rec.history:
        if turn.at and previous:
            data.role_latency[turn.role].append(max(0.0, turn.at - previous))
        previous = turn.at or previous
    for k, v in rec.metrics.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
            metrics[k].append(float(v))
    if not metrics and rec.status != Status.FAILED:
        outputs.append(output_numbers(rec.output))


def _pick(values: dict[str, list[float]]) -> dict[str, list[float]]:
    """The most widely present numeric keys (at most MAX_QUALITY_KEYS), in a stable order."""
    keys = sorted(values, key=lambda k: (-len(values[k]), k))[:MAX_QUALITY_KEYS]
    return {k: values[k] for k in sorted(keys)}
