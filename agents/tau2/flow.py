"""tau2's loop as a slurmgen transition, its limits, and the metrics.

Routing (tau2 ``Orchestrator.step``; Matrix ``Tau2Orchestrator``): the conversation
opens with the assistant's fixed greeting, then the user speaks. A message with tool
calls goes to ``env``, which runs them in the task's tool-pool session and returns to
the caller; a user text goes to the assistant, an assistant text to the user. A user
text containing ``###STOP###``, ``###TRANSFER###`` or ``###OUT-OF-SCOPE###`` ends the
conversation (``user_stop``). After each step that is not headed to ``env``:
``steps >= max_steps`` ends it with ``max_steps``, then ``errors >= max_errors``
(tool errors) with ``too_many_errors`` — in that order, as tau2 checks them. An empty
message ends it with ``agent_error`` / ``user_error``. Every ending goes to ``reward``,
which runs tau2's evaluator (0 for any ending but a stop), then the task is done.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from math import comb
from typing import Any

import msgspec

from slurmgen.workflow import Orchestrator, Record, Status, Task, Turn

TERMINATIONS = ("user_stop", "agent_stop", "max_steps", "too_many_errors", "agent_error", "user_error")


class Tau2State(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Per-task counters, decoded by the runtime for each hop (``task.state``) (the record's ``output``)."""

    steps: int = 0  # tau2's step_count (with workflow.count_env_steps=false: LLM calls only)
    llm_calls: int = 0
    tool_calls: int = 0
    errors: int = 0  # tool results with error=True (tau2's num_errors)
    termination: str = ""  # a tau2 TerminationReason value once the conversation ended
    stop: str = ""  # which user token ended it: stop | transfer | out_of_scope
    reward: float | None = None


def has_tool_calls(turn: Turn) -> bool:
    return bytes(turn.tool_calls) not in (b"null", b"[]")


def caller_of(history: list[Turn]) -> str:
    """The role whose tool calls the env step answers (the last non-env turn)."""
    return next(t.role for t in reversed(history) if t.role != "env")


class _Initial(msgspec.Struct):
    initial_state: Any = None


def first_role(orch: Orchestrator) -> str:
    """"user" after tau2's greeting; a task with a ``message_history`` resumes after its
    last message (as tau2's orchestrator does)."""
    initial = msgspec.json.decode(orch.row, type=_Initial).initial_state or {}
    history = initial.get("message_history") or []
    if not history:
        return "user"
    last = history[-1]
    if last.get("role") == "tool":
        return "assistant" if last.get("requestor", "assistant") == "assistant" else "user"
    if last.get("tool_calls"):
        return "env"
    if last.get("role") == "user":
        content = last.get("content") or ""
        return "reward" if any(tok in content for tok in ("###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###")) \
            else "assistant"
    return "user"


def transition(task: Task[Any, Tau2State]) -> str | None:
    orch = task.orch
    if orch.status is not Status.RUNNING:
        return None
    if not orch.history:
        return first_role(orch)
    last = orch.history[-1]
    if last.role == "reward":
        return None
    if task.state.termination:
        return "reward"
    if last.role == "env":
        return caller_of(orch.history)
    if has_tool_calls(last):
        return "env"
    return "user" if last.role == "assistant" else "assistant"


def end_of_step(state: Tau2State, conf: Any, *, llm: bool, to_env: bool) -> None:
    """tau2's bookkeeping after a step: count it, then the limits unless bound for env."""
    if llm or conf.count_env_steps:
        state.steps += 1
    if to_env:
        return
    if state.steps >= conf.max_steps:
        state.termination = "max_steps"
    if state.errors >= conf.max_errors:
        state.termination = "too_many_errors"


# -- metrics ---------------------------------------------------------------------------


def reward_of(record: Record) -> float:
    """A failed task (LLM error, lost tool pool, ...) scores 0."""
    return float(record.metrics.get("reward", 0.0)) if record.status == Status.OK else 0.0


def pass_hat_k(successes_by_task: dict[str, list[bool]], k: int) -> float:
    """tau2's pass^k: mean over tasks of C(c, k) / C(n, k) (tasks with n >= k trials)."""
    values = [comb(sum(s), k) / comb(len(s), k) for s in successes_by_task.values() if len(s) >= k]
    return sum(values) / len(values) if values else 0.0


def one_per_trial(records: list[Record]) -> list[Record]:
    """Each task trial once: of duplicate records (at-least-once delivery), the first finished."""
    first: dict[str, Record] = {}
    for r in sorted(records, key=lambda r: r.finished_at):
        first.setdefault(r.task_id, r)
    return list(first.values())


def trials_by_task(records: list[Record]) -> tuple[dict[str, list[bool]], int]:
    """Success (reward 1) per trial of each task, every task with as many trials as the most
    tried one: a trial without a record counts as a failure, as does a failed record
    (an infrastructure failure: LLM error after retries, lost tool session, ...), so no task
    leaves pass^k (tau2 1.0.1 dropped such simulations). Returns them and the missing count."""
    by_task: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        by_task[r.row_id].append(abs(reward_of(r) - 1.0) <= 1e-6)
    trials = max((len(s) for s in by_task.values()), default=0)
    missing = sum(trials - len(s) for s in by_task.values())
    return {t: s + [False] * (trials - len(s)) for t, s in by_task.items()}, missing


def failures(records: list[Record]) -> dict[str, float]:
    """Records that are not ``ok``, by status and reason class: ``failed/llm_error``, ``failed/tool_lost``, ..."""
    out: Counter[str] = Counter(f"{r.status}/{r.reason.split(':', 1)[0].strip() or 'unknown'}"
                                for r in records if r.status != "ok")
    return {k: float(n) for k, n in sorted(out.items())}


def metrics(records: list[Record]) -> dict[str, float]:
    """Mean reward, pass^k for k = 1..trials, failures by reason, termination shares, stop
    tokens, tokens per role."""
    records = one_per_trial(records)
    total = len(records)
    if not total:
        return {}
    by_task, missing = trials_by_task(records)
    trials = max(len(s) for s in by_task.values())
    out: dict[str, float] = {"reward": sum(reward_of(r) for r in records) / total,
                             "tasks": float(len(by_task)), "conv_err": float(sum(r.status == Status.FAILED for r in records)),
                             "missing_trials": float(missing)}
    for k in range(1, trials + 1):
        out[f"pass^{k}"] = pass_hat_k(by_task, k)
    out.update(failures(records))
    ends: Counter[str] = Counter({t: 0 for t in TERMINATIONS})
    stops: Counter[str] = Counter()
    steps = errors = tool_calls = 0
    for r in records:
        state = msgspec.json.decode(r.output, type=Tau2State | None) if r.status == Status.OK else None
        ends[state.termination if state and state.termination else "error"] += 1
        if state is not None:
            steps, errors, tool_calls = steps + state.steps, errors + state.errors, tool_calls + state.tool_calls
            if state.stop:
                stops[state.stop] += 1
    out.update({f"termination/{k}": n / total for k, n in sorted(ends.items())})
    out.update({f"stop_token/{k}": float(n) for k, n in sorted(stops.items())})
    out.update({"steps_per_task": steps / total, "tool_calls_per_task": tool_calls / total,
                "tool_errors_per_task": errors / total})
    roles: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        for role, u in r.usage.items():
            roles[role][0] += u.prompt_tokens
            roles[role][1] += u.completion_tokens
    for role, (prompt, completion) in sorted(roles.items()):
        out[f"tokens/{role}/prompt"] = float(prompt)
        out[f"tokens/{role}/completion"] = float(completion)
        out[f"tokens/{role}/per_task"] = (prompt + completion) / total
    return out
