"""``report.html`` beside ``summary.json``: charts and tables of a run.

    write_report(run_dir) -> RUN/report.html
    python -m slurmgen.report RUN_DIR [--sibling-png]

Throughput over time, termination reasons, tokens per role, role latency and the
workflow's quality metric (the records' numeric ``metrics``: reward for tau2,
agreement for coral; nr has none, so the numeric fields of its outputs), then
``summary.json`` as tables. Charts are PNGs drawn with matplotlib (Agg), embedded
as data URIs (one self-contained file to copy off the cluster) or, with
``embed=False``, written beside it in ``RUN/report/``. Without matplotlib the
report says so and still has every table. A chart that cannot be drawn is
reported in its place; it never stops the report.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import time
from pathlib import Path
from typing import Any

from slurmgen.report import charts
from slurmgen.report.data import ReportData, load
from slurmgen.rundir import RunDir, write_atomic

__all__ = ["render_html", "write_report"]

log = logging.getLogger("slurmgen.report")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2em auto;max-width:1000px;
color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em} .note{background:#fff4e5;border-left:4px solid #ef8f00;padding:.5em 1em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em} td,th{border:1px solid #ddd;padding:.25em .7em}
th{background:#f5f5f5;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:.5em 0} .cards{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.4em} .card span{color:#666;font-size:.85em}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _cell(value: Any) -> str:
    cls = ' class="n"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{cls}>{html.escape(_fmt(value))}</td>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_tables(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return ('<p class="note">No summary.json yet (the run has not finished, or its driver was stopped). '
                "The charts above are drawn from the records written so far.</p>")
    scalars = [[k, v] for k, v in summary.items() if not isinstance(v, (dict, list))]
    parts = ["<h3>Totals</h3>", _table(["field", "value"], scalars)]
    metrics = summary.get("metrics") or {}
    if metrics:
        parts += ["<h3>Workflow metrics</h3>", _table(["metric", "value"], [[k, v] for k, v in metrics.items()])]
    if summary.get("metrics_error"):
        parts += ["<h3>Workflow metrics: not computed (a bug in the workflow)</h3>",
                  _table(["workflow.metrics raised"], [[summary["metrics_error"]]])]
    reasons = summary.get("reasons") or {}
    if reasons:
        total = sum(reasons.values()) or 1
        examples = summary.get("reason_examples") or {}
        rows = [[k or "(none)", n, f"{100 * n / total:.1f} %", " | ".join(examples.get(k, []))]
                for k, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        parts += ["<h3>Reasons</h3>", _table(["reason", "tasks", "share", "examples"], rows)]
    usage = summary.get("usage_by_role") or {}
    if usage:
        rows = [[role, u.get("requests", 0), u.get("prompt_tokens", 0), u.get("completion_tokens", 0),
                 u.get("truncated", 0)] for role, u in usage.items()]
        parts += ["<h3>Usage by role</h3>", _table(["role", "requests", "prompt tokens", "completion tokens",
                                                    "cut at max_tokens"], rows)]
    pools = summary.get("usage_by_pool") or {}
    if pools:
        rows = [[name, u.get("model", ""), u.get("attempts", 0), u.get("prompt_tokens", 0),
                 u.get("completion_tokens", 0), u.get("errors", 0), f"{u.get('mean_latency_s', 0.0):.3f} s"]
                for name, u in pools.items()]
        parts += ["<h3>LLM pools</h3>", _table(["pool", "model", "requests", "prompt tokens", "completion tokens",
                                                "errors", "mean latency"], rows)]
    return "\n".join(parts)


def _cards(data: ReportData) -> str:
    s = data.summary or {}
    tokens = sum(u.prompt_tokens + u.completion_tokens for u in data.usage_by_role.values())
    span = max(0.0, data.last - data.first)
    cards: list[tuple[str, float]] = [("records", data.records), ("ok", data.by_status.get("ok", 0)),
             ("rejected", data.by_status.get("rejected", 0)), ("failed", data.by_status.get("failed", 0)),
             ("tokens", tokens)]
    if "tokens_per_s" in s:
        cards.append(("tokens/s (last invocation)", float(s["tokens_per_s"])))
    elif span > 0:
        cards.append(("tokens/s (first to last task)", tokens / span))
    if s.get("expected_tasks"):
        cards.append(("expected", int(s["expected_tasks"])))
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{html.escape(_fmt(v))}</b><span>{html.escape(k)}</span></div>' for k, v in cards
    ) + "</div>"


def render_html(data: ReportData, images: list[tuple[str, str, str]], note: str) -> str:
    """``images``: (title, src or "", error) per chart, in order."""
    title = f"slurmgen report: {data.workflow or 'run'} — {data.run_dir.name}"
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">run directory {html.escape(str(data.run_dir))} · generated {html.escape(generated)}'
        + (f" · {data.unreadable_lines} unreadable record lines skipped" if data.unreadable_lines else "") + "</p>",
        _cards(data),
    ]
    if note:
        parts.append(f'<p class="note" id="charts-note">{html.escape(note)}</p>')
    for title_, src, error in images:
        parts.append(f"<h2>{html.escape(title_)}</h2>")
        if src:
            parts.append(f'<img src="{html.escape(src)}" alt="{html.escape(title_)}">')
        elif error:
            parts.append(f'<p class="note">{html.escape(error)}</p>')
    parts += ["<h2>summary.json</h2>", _summary_tables(data.summary), "</body></html>"]
    return "\n".join(parts) + "\n"


def write_report(run_dir: Path | str, *, embed: bool = True) -> Path:
    """Write ``RUN/report.html`` (and ``RUN/report/*.png`` unless ``embed``); return its path."""
    run = RunDir(Path(run_dir).resolve())
    data = load(run.root)
    note = charts.available()
    images: list[tuple[str, str, str]] = []
    if not note:
        png_dir = run.root / "report"
        for name, title, draw in charts.CHARTS:
            try:
                png = draw(data)
            except Exception as exc:  # a chart bug must not cost the run its report
                log.exception("report chart %s failed", name)
                images.append((title, "", f"this chart could not be drawn: {type(exc).__name__}: {exc}"))
                continue
            if png is None:
                images.append((title, "", "no data for this chart"))
            elif embed:
                images.append((title, "data:image/png;base64," + base64.b64encode(png).decode(), ""))
            else:
                png_dir.mkdir(exist_ok=True)
                write_atomic(png_dir / f"{name}.png", png)
                images.append((title, f"report/{name}.png", ""))
    path = run.root / "report.html"
    write_atomic(path, render_html(data, images, note).encode())
    return path
