"""NR transitions and metrics (Matrix ``NROrchestrator`` / ``NRMetricsAccumulator``)."""

from __future__ import annotations

from collections import Counter

from slurmgen.workflow import Record, Status, Task, reason_class

from .data import Document
from .parse import REJECTIONS, SUCCESS
from .state import NRState

FIRST_ROLE = "filter"
NEXT_ROLE = {"filter": "score", "score": "question"}  # question is the last stage


def transition(task: Task[Document, NRState]) -> str | None:
    """filter -> score -> question; the first failed gate (a terminal status) ends it."""
    if task.status is not Status.RUNNING:
        return None
    if not task.history:
        return FIRST_ROLE
    return NEXT_ROLE.get(task.history[-1].role)


def _tokens(record: Record) -> tuple[int, int]:
    prompt = sum(u.prompt_tokens for u in record.usage.values())
    completion = sum(u.completion_tokens for u in record.usage.values())
    return prompt, completion


def metrics(records: list[Record]) -> dict[str, float]:
    """Acceptance rate = accepted / total input; one count per termination reason.

    ``conv_err`` counts failed tasks (LLM errors, bad rows). Token means are per task,
    over every task including rejected ones.
    """
    total = len(records)
    statuses = Counter(r.status for r in records)
    reasons = Counter({reason: 0 for reason in (*REJECTIONS, SUCCESS)})
    reasons.update(reason_class(r.status, r.reason) for r in records if r.reason)  # a failure by its class
    tokens = [_tokens(r) for r in records]
    out: dict[str, float] = {
        "total_input": float(total),
        "acceptance_rate": statuses[Status.OK] / total if total else 0.0,
        "conv_err": float(statuses[Status.FAILED]),
        "tokens_per_task": sum(p + c for p, c in tokens) / total if total else 0.0,
        "completion_tokens_per_task": sum(c for _, c in tokens) / total if total else 0.0,
    }
    out.update({f"reason/{reason}": float(n) for reason, n in sorted(reasons.items())})
    return out
