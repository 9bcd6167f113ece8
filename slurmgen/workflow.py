"""What a workflow is: roles, a transition function, metrics and a row schema.

A workflow is declared in config (``WorkflowConf``) by import paths; ``load_workflow``
resolves them. Nothing in ``slurmgen`` imports a workflow statically.

- A **role** is ``async def role(orch: Orchestrator, ctx: RoleContext) -> None``. It is
  stateless: it reads the task from ``orch`` (row, state, history), may call services
  through ``ctx``, and updates ``orch`` in place (append a Turn, set state, usage,
  status/reason, metrics).
- The **transition** is ``def transition(orch) -> str | None``: the next role, or
  ``None`` when the task is done. It is called once before the first role (empty
  history) and after every role.
- The **metrics** function is ``def metrics(records: list[Record]) -> dict[str, float]``.
- The **row type** is a msgspec Struct with a ``row_id()`` method; rows are decoded
  and validated against it (a missing field becomes a failed record naming it).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol

import msgspec

from slurmgen.errors import ConfigError
from slurmgen.llm.types import ChatMessage, ChatReply, Sampling
from slurmgen.protocol import Orchestrator, Turn, Usage
from slurmgen.records import Record


class ChatClient(Protocol):
    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        sampling: Sampling,
        seed: int | None = None,
        tools: list[dict] | None = None,
        tool_choice: object = None,
        response_format: dict | None = None,
        sticky_key: str | None = None,
    ) -> ChatReply: ...


@dataclass(frozen=True)
class RoleContext:
    """What a role may use besides the message."""

    llm: ChatClient
    conf: Any  # the workflow's typed config object (a WorkflowConf subclass)
    log: logging.Logger
    # the tool pools (slurmgen.toolpool.ToolPools or LocalPools): open / call / release a
    # task's sessions; None when the run starts no pool
    tools: Any = None


RoleFn = Callable[[Orchestrator, RoleContext], Awaitable[None]]
TransitionFn = Callable[[Orchestrator], "str | None"]
MetricsFn = Callable[[list[Record]], "dict[str, float]"]


@dataclass(frozen=True)
class Workflow:
    name: str
    roles: Mapping[str, RoleFn]
    transition: TransitionFn
    metrics: MetricsFn
    row_type: type[msgspec.Struct]


def import_path(path: str, what: str) -> Any:
    """Resolve ``"package.module:attribute"``; errors name the config field."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what}={path!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what}={path!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{what}={path!r}: {module_name!r} has no attribute {attr!r}") from None


def load_workflow(conf: Any) -> Workflow:
    """Build a Workflow from a WorkflowConf (roles, transition, metrics, row)."""
    roles = {name: import_path(path, f"workflow.roles.{name}") for name, path in conf.roles.items()}
    return Workflow(
        name=conf.name,
        roles=roles,
        transition=import_path(conf.transition, "workflow.transition"),
        metrics=import_path(conf.metrics, "workflow.metrics"),
        row_type=import_path(conf.row, "workflow.row"),
    )


def add_turn(orch: Orchestrator, role: str, reply: ChatReply | None, *, data: Any = None, at: float = 0.0) -> Turn:
    """Append a role's turn (and its LLM usage, if any) to the task."""
    turn = Turn(role=role, at=at)
    if reply is not None:
        turn.content = reply.content or ""
        turn.prompt_tokens = reply.usage.prompt_tokens
        turn.completion_tokens = reply.usage.completion_tokens
        if reply.tool_calls:
            turn.tool_calls = msgspec.Raw(msgspec.json.encode(reply.tool_calls))
        usage = orch.usage.setdefault(role, Usage())
        usage.prompt_tokens += reply.usage.prompt_tokens
        usage.completion_tokens += reply.usage.completion_tokens
        usage.requests += 1
    if data is not None:
        turn.data = msgspec.Raw(msgspec.json.encode(data))
    orch.history.append(turn)
    return turn


def finish(orch: Orchestrator, status: str, reason: str) -> None:
    """Mark the task terminal; the transition function should then return None."""
    orch.status = status
    orch.reason = reason
