"""The report's charts as PNG bytes (matplotlib, Agg; no pyplot, no display needed)."""

from __future__ import annotations

import io
import statistics
from collections.abc import Callable
from typing import Any

from slurmgen.report.data import ReportData

STATUS_COLORS = {"ok": "#2e7d32", "rejected": "#ef8f00", "failed": "#c62828"}
PROMPT_COLOR, COMPLETION_COLOR = "#5c6bc0", "#26a69a"


def available() -> str:
    """'' when matplotlib can draw, else why not."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError as exc:
        return f"matplotlib is not installed ({exc}); install it (pip install matplotlib) for the charts"
    return ""


def _figure(width: float = 8.0, height: float = 3.4) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _eng() -> Any:
    from matplotlib.ticker import EngFormatter

    return EngFormatter(sep="")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def throughput(data: ReportData) -> bytes | None:
    tp = data.throughput
    if not tp.starts:
        return None
    fig = _figure(8.0, 4.2)
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = [*tp.starts, tp.starts[-1] + tp.width_s]  # the last bucket's end closes the step
    tokens, tasks = [*tp.tokens_per_s, tp.tokens_per_s[-1]], [*tp.tasks_per_s, tp.tasks_per_s[-1]]
    top.step(x, tokens, where="post", color=PROMPT_COLOR)
    top.fill_between(x, tokens, step="post", alpha=0.25, color=PROMPT_COLOR)
    top.set_ylabel("tokens/s")
    top.yaxis.set_major_formatter(_eng())
    top.set_title(f"Throughput over time ({tp.width_s:g} s buckets, by task finish time)")
    bottom.step(x, tasks, where="post", color=STATUS_COLORS["ok"])
    bottom.fill_between(x, tasks, step="post", alpha=0.25, color=STATUS_COLORS["ok"])
    bottom.set_ylabel("tasks/s")
    bottom.set_xlabel("seconds since the first task started")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.set_xlim(0, x[-1])
    return _png(fig)


def reasons(data: ReportData) -> bytes | None:
    if not data.reasons:
        return None
    items = sorted(data.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:30]
    fig = _figure(8.0, max(2.2, 0.9 + 0.32 * len(items)))
    ax = fig.subplots()
    labels = [f"{reason} ({status})" for (status, reason), _ in items]
    counts = [n for _, n in items]
    colors = [STATUS_COLORS.get(status, "#757575") for (status, _), _ in items]
    y = list(range(len(items)))[::-1]
    ax.barh(y, counts, color=colors)
    ax.set_yticks(y, labels)
    for yi, n in zip(y, counts):
        ax.annotate(str(n), (n, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel("tasks")
    ax.set_title("Termination reasons")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def role_tokens(data: ReportData) -> bytes | None:
    roles = _role_usage(data)
    if not roles:
        return None
    names = list(roles)
    prompt = [roles[r][0] for r in names]
    completion = [roles[r][1] for r in names]
    fig = _figure(8.0, 3.4)
    ax = fig.subplots()
    ax.bar(names, prompt, color=PROMPT_COLOR, label="prompt")
    ax.bar(names, completion, bottom=prompt, color=COMPLETION_COLOR, label="completion")
    ax.set_ylabel("tokens")
    ax.yaxis.set_major_formatter(_eng())
    ax.set_title("Tokens per role")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _role_usage(data: ReportData) -> dict[str, tuple[int, int]]:
    by_role = (data.summary or {}).get("usage_by_role")
    if isinstance(by_role, dict) and by_role:
        return {r: (int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))) for r, u in by_role.items()}
    return {r: (u.prompt_tokens, u.completion_tokens) for r, u in data.usage_by_role.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def role_latency(data: ReportData) -> bytes | None:
    roles = {r: v for r, v in data.role_latency.items() if v}
    if not roles:
        return None
    names = sorted(roles, key=lambda r: statistics.median(roles[r]))
    fig = _figure(8.0, max(2.4, 1.2 + 0.55 * len(names)))
    ax = fig.subplots()
    height = 0.26
    for i, (q, color) in enumerate(((0.5, "#90caf9"), (0.9, "#42a5f5"), (0.99, "#1565c0"))):
        ys = [j + (i - 1) * height for j in range(len(names))]
        ax.barh(ys, [percentile(roles[r], q) for r in names], height=height, color=color, label=f"p{round(q * 100)}")
    ax.set_yticks(range(len(names)), [f"{r} (n={len(roles[r])})" for r in names])
    ax.set_xlabel("seconds per turn (since the previous turn or the task's start)")
    ax.set_title("Role latency percentiles")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def quality(data: ReportData) -> bytes | None:
    if not data.quality:
        return None
    keys = list(data.quality)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig = _figure(8.0, 2.6 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, key in zip([a for row in axes for a in row], keys):
        values = data.quality[key]
        distinct = sorted(set(values))
        if len(distinct) <= 10:
            counts = [values.count(v) for v in distinct]
            ax.bar([f"{v:g}" for v in distinct], counts, color=PROMPT_COLOR)
        else:
            ax.hist(values, bins=min(30, max(5, len(values) // 5)), color=PROMPT_COLOR)
        ax.set_title(f"{key}  (mean {statistics.fmean(values):.3g}, n={len(values)})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in [a for row in axes for a in row][len(keys):]:
        ax.set_visible(False)
    where = "records' metrics" if data.quality_source == "metrics" else "numeric fields of the records' output"
    fig.suptitle(f"Quality: distribution of the {where}")
    return _png(fig)


CHARTS: list[tuple[str, str, Callable[[ReportData], bytes | None]]] = [
    ("throughput", "Throughput over time", throughput),
    ("reasons", "Termination reasons", reasons),
    ("role_tokens", "Tokens per role", role_tokens),
    ("role_latency", "Role latency percentiles", role_latency),
    ("quality", "Quality metric distribution", quality),
]
