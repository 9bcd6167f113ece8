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
- The **state type** (optional) is a msgspec Struct whose fields all have defaults: roles
  and the transition see ``orch.state`` as that Struct (decoded once per hop, encoded
  once after it); without one, ``orch.state`` is a dict (a JSON object). It becomes the
  record's ``output``.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from slurmgen.errors import ConfigError
from slurmgen.llm.types import ChatMessage, ChatReply, Sampling
from slurmgen.protocol import Failure, Orchestrator, Status, Turn, Usage

__all__ = [
    "Failure",
    "Orchestrator",
    "Record",
    "RoleContext",
    "Status",
    "Turn",
    "Usage",
    "Workflow",
    "add_turn",
    "fail",
    "finish",
]
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
    state_type: type = dict  # a msgspec Struct, or dict


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
        state_type=_state_type(conf.state),
    )


def _state_type(path: str) -> type:
    if not path:
        return dict
    cls = import_path(path, "workflow.state")
    if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
        raise ConfigError(f"workflow.state={path!r} must name a msgspec.Struct class, not {cls!r}")
    try:
        cls()
    except TypeError as exc:
        raise ConfigError(f"workflow.state={path!r}: every field needs a default (a task starts with "
                          f"{cls.__name__}()): {exc}") from None
    return cls


def open_state(workflow: Workflow, orch: Orchestrator) -> None:
    """Decode ``orch.state`` into the workflow's state type (a fresh one before the first role)."""
    if not isinstance(orch.state, msgspec.Raw):
        return
    raw = bytes(orch.state)
    if raw == b"null":
        orch.state = workflow.state_type()
        return
    try:
        orch.state = msgspec.json.decode(raw, type=workflow.state_type)
    except msgspec.ValidationError as exc:
        raise TypeError(f"orch.state does not match the workflow's state type "
                        f"{workflow.state_type.__name__}: {exc}") from None


def close_state(orch: Orchestrator) -> None:
    """Encode the state back for the wire (a role may also have stored it already encoded)."""
    if not isinstance(orch.state, msgspec.Raw):
        orch.state = msgspec.Raw(msgspec.json.encode(orch.state))


def add_turn(orch: Orchestrator, role: str, reply: ChatReply | None, *, data: Any = None,
             at: float | None = None) -> Turn:
    """Append a role's turn (and its LLM usage, if any) to the task; ``at`` defaults to now."""
    turn = Turn(role=role, at=time.time() if at is None else at)
    if reply is not None:
        turn.content = reply.content or ""
        turn.prompt_tokens = reply.usage.prompt_tokens
        turn.completion_tokens = reply.usage.completion_tokens
        turn.model, turn.pool = reply.model, reply.pool
        if reply.tool_calls:
            turn.tool_calls = msgspec.Raw(msgspec.json.encode(reply.tool_calls))
        usage = orch.usage.setdefault(role, Usage())
        usage.prompt_tokens += reply.usage.prompt_tokens
        usage.completion_tokens += reply.usage.completion_tokens
        usage.requests += 1
        usage.model, usage.pool = reply.model, reply.pool
    if data is not None:
        turn.data = msgspec.Raw(msgspec.json.encode(data))
    orch.history.append(turn)
    return turn


def finish(orch: Orchestrator, status: Status, reason: str) -> None:
    """Mark the task terminal; the transition function should then return None.

    ``status`` is ``Status.OK`` or ``Status.REJECTED`` (with the workflow's reason), or
    ``Status.FAILED`` with a reason that starts with a ``Failure`` ("tool_error: ..."; see
    ``fail``). Anything else raises at once: a typo must not count as nothing."""
    if not isinstance(status, Status) or status is Status.RUNNING:
        raise TypeError(f"finish(): status must be Status.OK, Status.REJECTED or Status.FAILED, not {status!r}")
    if status is Status.FAILED and Failure.of(reason) is None:
        raise ValueError(f"finish(): a failed task's reason must start with a Failure class "
                         f"({', '.join(Failure)}), not {reason!r}; use fail(orch, Failure.X, message)")
    orch.status = status
    orch.reason = reason


def fail(orch: Orchestrator, failure: Failure, message: str) -> None:
    """Mark the task failed with ``failure`` (its record's reason is "<failure>: <message>")."""
    finish(orch, Status.FAILED, Failure(failure).reason(message))
