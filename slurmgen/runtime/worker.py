"""Running one role on one task, and deciding where the task goes next."""

from __future__ import annotations

import logging

from slurmgen.errors import LLMError, ToolPoolError
from slurmgen.protocol import Failure, Orchestrator, Status
from slurmgen.workflow import (
    RoleContext,
    Workflow,
    close_state,
    fail,
    finish,
    open_state,
)

log = logging.getLogger("slurmgen.worker")


async def run_role(workflow: Workflow, ctx: RoleContext | None, orch: Orchestrator, log_file: str = "") -> None:
    """Run ``orch.next_role`` and set ``orch.next_role`` to the following one ("" = done).

    Failures never escape: an LLM or tool-pool error or a bug in a role becomes a failed task with
    a reason, which goes home to its origin like any other finished task.
    """
    role = orch.next_role
    handler = workflow.roles.get(role)
    try:
        if handler is None:
            raise KeyError(f"workflow {workflow.name!r} has no role {role!r}")
        open_state(workflow, orch)
        await handler(orch, ctx)
    except (LLMError, ToolPoolError) as exc:
        log.warning("task=%s role=%s %s: %s", orch.task_id, role, exc.kind, exc)
        fail(orch, exc.kind, str(exc))
    except Exception as exc:  # the one boundary catch: a role bug fails its task only
        log.exception("task=%s role=%s internal error", orch.task_id, role)
        fail(orch, Failure.INTERNAL, f"{type(exc).__name__}: {exc}")
    if orch.status == Status.FAILED:
        orch.log = f"{log_file} task={orch.task_id}"
    orch.step += 1
    try:
        nxt = workflow.transition(orch) if orch.status == Status.RUNNING else None
    except Exception as exc:  # a transition bug fails its task only, like a role's
        log.exception("task=%s transition after role=%s failed", orch.task_id, role)
        fail(orch, Failure.INTERNAL, f"{type(exc).__name__}: {exc}")
        nxt = None
    finally:
        close_state(orch)
    if nxt is None:
        if orch.status == Status.RUNNING:
            finish(orch, Status.OK, orch.reason or "done")
        orch.next_role = ""
    else:
        orch.next_role = nxt
