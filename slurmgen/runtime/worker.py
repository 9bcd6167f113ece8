"""Running one role on one task, and deciding where the task goes next."""

from __future__ import annotations

import logging
from typing import Any

from slurmgen.errors import LLMError, ToolPoolError
from slurmgen.llm.footprint import CURRENT_TASK
from slurmgen.protocol import Failure, Orchestrator, Status
from slurmgen.workflow import RoleContext, Task, Workflow, close_task, fail, finish

log = logging.getLogger("slurmgen.worker")


async def run_role(workflow: Workflow, ctx: RoleContext[Any] | None, orch: Orchestrator, log_file: str = "") -> None:
    """Run ``orch.next_role`` and set ``orch.next_role`` to the following one ("" = done).

    The row and the state are decoded once for the hop (``Task``) and the state encoded back
    after it. Failures never escape: an LLM or tool-pool error or a bug in a role becomes a
    failed task with a reason, which goes home to its origin like any other finished task.
    """
    role = orch.next_role
    task: Task[Any, Any] | None = None
    try:
        handler = workflow.roles.get(role)
        if handler is None or ctx is None:
            raise KeyError(f"workflow {workflow.name!r} has no role {role!r}")
        task = workflow.new_task(orch)
        current = CURRENT_TASK.set(orch)  # its LLM requests record their conversations' KV in it
        try:
            await handler(task, ctx)
        finally:
            CURRENT_TASK.reset(current)
    except (LLMError, ToolPoolError) as exc:
        log.warning("task=%s role=%s %s: %s", orch.task_id, role, exc.kind, exc)
        fail(orch, exc.kind, str(exc))
    except Exception as exc:  # the one boundary catch: a role bug fails its task only
        log.exception("task=%s role=%s internal error", orch.task_id, role)
        fail(orch, Failure.INTERNAL, f"{type(exc).__name__}: {exc}")
    if orch.status is Status.FAILED:
        orch.log = f"{log_file} task={orch.task_id}"
    orch.step += 1
    orch.next_role = _next(workflow, task, role) or ""
    if not orch.next_role and orch.status is Status.RUNNING:
        finish(orch, Status.OK, orch.reason or "done")


def _next(workflow: Workflow, task: Task[Any, Any] | None, role: str) -> str | None:
    """The transition after ``role`` (None = done); the hop's state is encoded back after it."""
    if task is None:  # the role never started: its task has failed
        return None
    try:
        return workflow.transition(task) if task.orch.status is Status.RUNNING else None
    except Exception as exc:  # a transition bug fails its task only, like a role's
        log.exception("task=%s transition after role=%s failed", task.task_id, role)
        fail(task, Failure.INTERNAL, f"{type(exc).__name__}: {exc}")
        return None
    finally:
        close_task(task)
