"""A run's steady rate and what bounded it, from its records' issue and finish times.

The steady window runs from the moment the tasks in flight first reached (95 % of) their
most, to the last task issued: the peers kept issuing as tasks finished (a run that issued its
whole dataset at once has none: issued more than 1.5 x finished there), so the finishes
in it came at the rate the run sustains. The rate is the slope of a least-squares
line through (k, time of the k-th finish) in the window. After the last issue the run only
drains (fewer and fewer tasks in flight), before the window it ramps up.

What bounded it: the in-flight cap (``run.max_in_flight``, over the whole run) when the mean number
of tasks in flight in the window reached 90 % of it; the tool pools when their members
queued session opens; otherwise the LLM pools (or, on a shared machine, its CPUs: a
simulator that is not the bound shows up here too).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from slurmgen.errors import ConfigError

MIN_STEADY = 20  # records finished in the steady window, at least
BOUNDS = {"in_flight": "the tasks in flight (run.max_in_flight, spread over run.peers)",
          "toolpool": "the tool pools (session opens queued: toolpool.size)",
          "llm": "the LLM pools (replicas), or the nodes' CPUs"}


class Steady(msgspec.Struct, kw_only=True):
    rate: float  # records/s in the window
    records: int  # written by the run's last invocation
    first_issued: float  # wall clock: the first task created
    last_issued: float
    last_written: float
    window_s: float
    window_records: int
    in_flight: float  # mean tasks in flight in the window
    cap: int  # run.max_in_flight


class _Times(msgspec.Struct):
    created_at: float = 0.0
    finished_at: float = 0.0


def steady(results: Path, cap: int, since: float = 0.0) -> Steady:
    """The steady rate of the records issued from ``since`` on (the last invocation of a resumed run)."""
    pairs = [(c, f) for c, f in _pairs(results) if c >= since]
    if not pairs:
        raise ConfigError("the calibration's last invocation wrote no records (a resumed run with nothing left to "
                          "do): calibrate from a fresh run.dir")
    created, finished = sorted(c for c, _ in pairs), sorted(f for _, f in pairs)
    full = _full_at(created, finished)
    window = [t for t in finished if full <= t <= created[-1]]
    issued = sum(1 for t in created if full <= t)  # in steady state as many as finished, not a flood
    if len(window) < MIN_STEADY or issued > 1.5 * len(window):
        raise ConfigError(
            f"the calibration run has no steady phase: of its {len(finished)} records, {len(window)} were written "
            f"while tasks were still being issued at full concurrency (up to run.max_in_flight = {cap} "
            f"in flight), so it measured their latency, not a rate. Calibrate with more records (at least 3 x {cap}, "
            f"e.g. dataset.limit={max(3 * cap, 200)} or run.trials) or a lower run.max_in_flight")
    rate = 1.0 / _slope(window)
    start, end = window[0], window[-1]
    busy = sum(max(0.0, min(f, end) - max(c, start)) for c, f in pairs)
    return Steady(rate=round(rate, 4), records=len(pairs), first_issued=created[0], last_issued=created[-1],
                  last_written=finished[-1], window_s=round(end - start, 3), window_records=len(window),
                  in_flight=round(busy / max(1e-9, end - start), 1), cap=cap)


def _full_at(created: list[float], finished: list[float]) -> float:
    """When the tasks in flight first reached 95 % of the most there ever were."""
    events = sorted([(t, 1) for t in created] + [(t, -1) for t in finished])
    level, top, curve = 0, 0, []
    for t, step in events:
        level += step
        top = max(top, level)
        curve.append((t, level))
    return next(t for t, n in curve if n >= 0.95 * top)


def _slope(ts: list[float]) -> float:
    """Seconds per record: least squares of t_k over k."""
    n = len(ts)
    mean_k, mean_t = (n - 1) / 2, sum(ts) / n
    num = sum((k - mean_k) * (t - mean_t) for k, t in enumerate(ts))
    den = sum((k - mean_k) ** 2 for k in range(n))
    return max(num / den, 1e-9)


def _pairs(results: Path) -> list[tuple[float, float]]:
    decoder = msgspec.json.Decoder(_Times)
    out: list[tuple[float, float]] = []
    for path in sorted(results.glob("shard-*.jsonl")):
        with path.open("rb") as f:
            out += [(t.created_at or t.finished_at, t.finished_at)
                    for t in (decoder.decode(line) for line in f if line.strip()) if t.finished_at]
    return out


class _PoolStats(msgspec.Struct):
    queued: int = 0


def bound(st: Steady, state: Path) -> str:
    """in_flight | toolpool | llm: see the module's docstring."""
    if st.in_flight >= 0.9 * st.cap:
        return "in_flight"
    for path in state.glob("stats-toolpool-*.json"):
        try:
            if msgspec.json.decode(path.read_bytes(), type=_PoolStats).queued:
                return "toolpool"
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue
    return "llm"
