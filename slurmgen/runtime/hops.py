"""The hops this peer works on: a task arrives, its role runs here, it goes on.

One hop: fill the task's spilled parts, run its next role (``worker.run_role``), spill
what grew large, return the sender's credit, hand the task to the dispatcher. A hop
that the runtime itself fails (not the role: ``run_role`` catches those) sends its task
home failed as ``lost``, which its origin issues again from the row.
"""

from __future__ import annotations

import logging
from typing import Any

from slurmgen.config.types import WorkflowConf
from slurmgen.errors import DiskFull
from slurmgen.llm.poolset import PoolClients
from slurmgen.proc.faults import fault
from slurmgen.proc.metrics import PeerMetrics
from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import Failure, Orchestrator
from slurmgen.registry.membership import RegistryClient
from slurmgen.runtime.blobs import SpillLayer
from slurmgen.runtime.dispatch import Dispatcher
from slurmgen.runtime.worker import run_role
from slurmgen.toolpool.client import ToolPools
from slurmgen.workflow import RoleContext, Workflow, fail

ROLE_LOG = logging.getLogger("slurmgen.role")


def role_contexts(workflow: Workflow, llm: PoolClients, tools: ToolPools,
                  conf: WorkflowConf) -> dict[str, RoleContext[Any]]:
    """Each role's context: its LLM pool, the workflow's conf, the tool pools."""
    return {role: RoleContext(llm=llm.for_role(role), conf=conf, log=ROLE_LOG, tools=tools)
            for role in workflow.roles}


class Hops:
    def __init__(self, peer_id: str, workflow: Workflow, contexts: dict[str, RoleContext[Any]], log_file: str, *,
                 spill: SpillLayer, dispatch: Dispatcher, registry: RegistryClient, metrics: PeerMetrics,
                 tasks: TaskSet) -> None:
        self.peer_id, self.workflow, self.contexts, self.log_file = peer_id, workflow, contexts, log_file
        self.spill, self.dispatch, self.registry, self.metrics, self.tasks = spill, dispatch, registry, metrics, tasks

    def start(self, orch: Orchestrator, sender: str) -> None:
        self.tasks.spawn(self._work(orch, sender), kind="hop", task_id=orch.task_id,
                         on_error=lambda exc: self._failed(orch, exc))

    async def _work(self, orch: Orchestrator, sender: str) -> None:
        self.registry.load += 1
        mark = self.metrics.role_start(orch)
        try:
            fault("hop")
            await self._run(orch)
        finally:
            self.registry.load -= 1
            self.dispatch.give_credit(sender)
        self.metrics.role_end(mark, orch)
        self.dispatch.send(orch)

    async def _run(self, orch: Orchestrator) -> None:
        if not await self.spill.fill(orch):  # the payload's node died: the task starts again from its row
            orch.next_role = ""
            return
        # the role's context (its LLM pool); None for a role the workflow lacks (run_role fails the task)
        await run_role(self.workflow, self.contexts.get(orch.next_role), orch, self.log_file)
        self.spill.spill(orch)

    def _failed(self, orch: Orchestrator, exc: BaseException) -> None:
        if isinstance(exc, DiskFull):
            raise exc
        if self.dispatch.passed_on(orch):
            return  # it was passed on before the failure: not this hop's to fail
        fail(orch, Failure.LOST, f"hop on {self.peer_id} failed: {type(exc).__name__}: {exc}")
        orch.next_role = ""
        self.dispatch.send(orch)
