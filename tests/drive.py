"""Drive one task through a workflow in this process, as peers would (the runtime's own
hop: decode the row and state, run the role, encode the state, ask the transition)."""

from __future__ import annotations

from typing import Any

from slurmgen.protocol import Orchestrator
from slurmgen.runtime.worker import run_role
from slurmgen.workflow import RoleContext, Workflow, first_role


async def drive(workflow: Workflow, ctx: RoleContext[Any], orch: Orchestrator) -> Orchestrator:
    orch.next_role = first_role(workflow, orch) or ""
    while orch.next_role:
        await run_role(workflow, ctx, orch)
    return orch
