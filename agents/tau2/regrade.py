"""tau2's reward again, from a record's recorded trajectory (``slurmgen regrade``).

As tau2's ``evaluate-trajs``: the conversation the record holds is evaluated again with
the task definitions installed now — the installed tau2 tasks of the run's domain (not the
built-in dataset's cached copy), the rows of the run's own ``dataset.path`` where that
file still exists, or else the row the record kept (``input``). The evaluation is the reward role's (``domain.evaluate``: tau2's
``evaluate_simulation`` with ``EvaluationType.ALL``). A record that failed before its
reward (LLM error, lost tool session) has no finished trajectory and stays as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from slurmgen.workflow import Record, Turn, cache_dir

from . import domain
from .flow import Tau2State
from .history import plain


def definitions(conf: Any) -> tuple[dict[str, bytes], str]:
    """Task id -> task JSON, and where they come from (for the report)."""
    dom = conf.workflow.domain
    tasks = {t["id"]: json.dumps(t).encode() for t in domain.load_tasks(dom, "all")}
    source = f"installed tau2 tasks of {domain.data_domain(dom)} ({len(tasks)})"
    path = Path(conf.dataset.path) if conf.dataset.path else None
    if path is not None and path.is_file() and not path.resolve().is_relative_to(cache_dir().resolve()):
        rows = [line for line in path.read_bytes().splitlines() if line.strip()]
        tasks.update({msgspec.json.decode(line)["id"]: line for line in rows})
        source += f" and {path} ({len(rows)})"
    return tasks, source


def _gradable(record: Record) -> bool:
    """Records whose conversation reached the reward role (or whose evaluation raised)."""
    if record.status == "ok":
        return any(t.role == "reward" for t in record.history)
    return record.status == "failed" and record.reason.startswith("reward_error")


def regrade_one(conf: Any, tasks: dict[str, bytes], record: Record) -> Record:
    """The record with its reward recomputed (unchanged if it never reached the reward)."""
    if not _gradable(record):
        return record
    raw = tasks.get(record.row_id) or bytes(record.input)
    state = msgspec.json.decode(record.output, type=Tau2State | None) or Tau2State()
    turns = [t for t in record.history if t.role != "reward"]
    at = next((t.at for t in record.history if t.role == "reward"), record.finished_at)
    termination = state.termination or "user_stop"
    try:
        info = domain.evaluate(conf.workflow.domain, domain.parse_task(raw), plain(turns), termination)
    except Exception as exc:  # noqa: BLE001 — as the reward role: e.g. a recorded tool output the replay does not reproduce
        return msgspec.structs.replace(record, status="failed", reason=f"reward_error: {type(exc).__name__}: {exc}",
                                       history=turns, metrics={k: v for k, v in record.metrics.items() if k != "reward"})
    state.reward = float(info["reward"])
    reward_turn = Turn(role="reward", data=msgspec.Raw(msgspec.json.encode(info)), at=at)
    return msgspec.structs.replace(record, status="ok", reason=termination, history=[*turns, reward_turn],
                                   metrics={**record.metrics, "reward": state.reward},
                                   output=msgspec.Raw(msgspec.json.encode(state)))


def regrader(conf: Any) -> tuple[Callable[[Record], Record], str]:
    """``workflow.regrade``: the function a run's records go through, and what it reads."""
    tasks, source = definitions(conf)
    return (lambda record: regrade_one(conf, tasks, record)), source
