"""Everything a workflow author imports: ``from slurmgen.workflow import ...``.

A workflow is one ``Workflow`` object holding its real functions and types, registered by
one entry point (group ``slurmgen.workflows``, ``name = "package:WORKFLOW"``) or, out of
tree, by the environment variable ``SLURMGEN_WORKFLOWS="name=package.module:WORKFLOW"``.

- A **role** is ``async def role(task: Task[Row, State], ctx: RoleContext[Conf]) -> None``.
  It is stateless: the runtime decodes the task's row and state once per hop and hands
  them over typed (``task.row``, ``task.state``); the role may call services through
  ``ctx`` (``ctx.llm``, ``ctx.tools``, ``ctx.conf``), changes ``task.state`` in place,
  appends turns (``add_turn``) and may end the task (``finish`` / ``fail``).
- The **transition** is ``def transition(task) -> str | None``: the next role, or ``None``
  when the task is done. It is called once before the first role and after every role.
- The **metrics** function is ``def metrics(records: list[Record]) -> dict[str, float]``.
- The **row type** is a msgspec Struct with a ``row_id()`` method; rows are decoded and
  validated against it (a row missing a field becomes a failed record naming it).
- The **state type** is a msgspec Struct whose fields all have defaults (a task starts
  with ``State()``), or ``dict``. It becomes the record's ``output``.
- The **conf class** is a dataclass subclassing ``WorkflowConf``: its fields are the
  workflow's knobs (``workflow.<field>=...`` on the command line), read as ``ctx.conf``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Generic, Mapping, Protocol, TypeVar

import msgspec

from slurmgen.config.types import SlurmgenConf, WorkflowConf
from slurmgen.errors import ConfigError, DatasetError
from slurmgen.export.shapes import default_chat, state_of
from slurmgen.input.builtin import cache_dir, cached_jsonl, write_jsonl_atomically
from slurmgen.llm.types import ChatMessage, ChatReply, Sampling, ToolCall, ToolFunction
from slurmgen.protocol import Failure, Orchestrator, Status, Turn, Usage
from slurmgen.records import Record, reason_class
from slurmgen.sim.content import count_tokens, lorem, truncate_tokens
from slurmgen.sim.script import ScriptReply, ScriptRequest

__all__ = [
    # a workflow and its parts
    "Workflow", "WorkflowConf", "SlurmgenConf", "role_backend", "Task", "RoleContext", "Record", "Turn", "Usage", "Orchestrator",
    # outcomes
    "Status", "Failure", "add_turn", "finish", "fail", "reason_class", "DatasetError", "ConfigError",
    # the LLM
    "ChatMessage", "ChatReply", "Sampling", "ToolCall", "ToolFunction",
    # the simulator's scripts
    "ScriptRequest", "ScriptReply", "count_tokens", "truncate_tokens", "lorem",
    # built-in data and export shapes
    "cache_dir", "cached_jsonl", "write_jsonl_atomically", "default_chat", "state_of",
]

ConfT = TypeVar("ConfT", bound=WorkflowConf, covariant=True)
RowT = TypeVar("RowT")
StateT = TypeVar("StateT")


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
class RoleContext(Generic[ConfT]):
    """What a role may use besides its task."""

    llm: ChatClient
    conf: ConfT  # the workflow's conf object (its WorkflowConf subclass)
    log: logging.Logger
    # the tool pools (slurmgen.toolpool.ToolPools or LocalPools): open / call / release a
    # task's sessions; None when the run starts no pool
    tools: Any = None


@dataclass
class Task(Generic[RowT, StateT]):
    """One task during one hop: its message, its row and its state, decoded."""

    orch: Orchestrator
    row: RowT
    state: StateT

    @property
    def task_id(self) -> str:
        return self.orch.task_id

    @property
    def seed(self) -> int:
        return self.orch.seed

    @property
    def history(self) -> list[Turn]:
        return self.orch.history

    @property
    def metrics(self) -> dict[str, float]:
        return self.orch.metrics

    @property
    def status(self) -> Status:
        return self.orch.status


Role = Callable[[Task[Any, Any], RoleContext[Any]], Awaitable[None]]
Transition = Callable[[Task[Any, Any]], "str | None"]
Metrics = Callable[[list[Record]], "dict[str, float]"]
Script = Callable[..., "ScriptReply | None"]  # (ScriptRequest, random.Random) -> a reply, None = generic
ExportShape = Callable[[Record], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Workflow:
    """A workflow: its roles, transition, metrics, types and extras (the real objects)."""

    name: str
    conf: type[WorkflowConf]  # its knobs (a WorkflowConf subclass)
    roles: Mapping[str, Role]
    transition: Transition
    metrics: Metrics
    row: type  # a msgspec Struct with row_id()
    state: type = dict  # a msgspec Struct (every field with a default), or dict
    # the simulator's content scripts: "default" is what llm.script=auto uses; llm.script=<name> picks another
    sim_scripts: Mapping[str, Script] = field(default_factory=dict)
    # (the run's workflow conf) -> path of the built-in dataset (generated on demand); None = none
    builtin_dataset: Callable[[Any], str | Path] | None = None
    # (spec) -> tool-pool session; None = the workflow uses no tool pool
    toolpool_factory: Callable[[Any], Any] | None = None
    # `slurmgen export --shape`: {"chat" | "sft": function(record) -> dict | None}; empty = the default chat
    export: Mapping[str, ExportShape] = field(default_factory=dict)
    # called once when a peer starts, before its first task (e.g. load a heavy library)
    warm: Callable[[], None] | None = None
    # `slurmgen regrade`: (the run's config) -> (function(record) -> record, where the definitions
    # come from); None = the workflow has no regrade
    regrade: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.state is not dict:
            if not (isinstance(self.state, type) and issubclass(self.state, msgspec.Struct)):
                raise TypeError(f"workflow {self.name!r}: state must be a msgspec.Struct class or dict, "
                                f"not {self.state!r}")
            try:
                self.state()
            except TypeError as exc:
                raise TypeError(f"workflow {self.name!r}: every field of {self.state.__name__} needs a "
                                f"default (a task starts with {self.state.__name__}()): {exc}") from None

    def new_task(self, orch: Orchestrator) -> Task[Any, Any]:
        """The hop's Task: the row and the state decoded once (a fresh state before the first role)."""
        row: Any = msgspec.json.decode(orch.row, type=self.row)
        raw = bytes(orch.state)
        if raw == b"null":
            return Task(orch, row, self.state())
        try:
            state: Any = msgspec.json.decode(raw, type=self.state)
        except msgspec.ValidationError as exc:
            raise TypeError(f"the task's state does not match the workflow's state type "
                            f"{self.state.__name__}: {exc}") from None
        return Task(orch, row, state)


def first_role(workflow: Workflow, orch: Orchestrator) -> str | None:
    """The transition before any role (a fresh state), the state encoded back after it."""
    task = workflow.new_task(orch)
    try:
        return workflow.transition(task)
    finally:
        close_task(task)


def close_task(task: Task[Any, Any]) -> None:
    """Encode the hop's state back onto its message (the record's output when it ends)."""
    task.orch.state = msgspec.Raw(msgspec.json.encode(task.state))


def _orch(task: Task[Any, Any] | Orchestrator) -> Orchestrator:
    return task.orch if isinstance(task, Task) else task


def add_turn(task: Task[Any, Any] | Orchestrator, role: str, reply: ChatReply | None, *, data: Any = None,
             at: float | None = None) -> Turn:
    """Append a role's turn (and its LLM usage, if any) to the task; ``at`` defaults to now."""
    orch = _orch(task)
    turn = Turn(role=role, at=time.time() if at is None else at)
    if reply is not None:
        turn.content = reply.content or ""
        turn.prompt_tokens = reply.usage.prompt_tokens
        turn.completion_tokens = reply.usage.completion_tokens
        turn.model, turn.pool = reply.model, reply.pool
        turn.finish_reason = reply.finish_reason
        turn.prompt_token_ids, turn.token_ids = reply.prompt_token_ids, reply.token_ids
        if reply.tool_calls:
            turn.tool_calls = msgspec.Raw(msgspec.json.encode(reply.tool_calls))
        usage = orch.usage.setdefault(role, Usage())
        usage.prompt_tokens += reply.usage.prompt_tokens
        usage.completion_tokens += reply.usage.completion_tokens
        usage.requests += 1
        usage.truncated += reply.finish_reason == "length"
        usage.model, usage.pool = reply.model, reply.pool
    if data is not None:
        turn.data = msgspec.Raw(msgspec.json.encode(data))
    orch.history.append(turn)
    return turn


def finish(task: Task[Any, Any] | Orchestrator, status: Status, reason: str) -> None:
    """Mark the task terminal; the transition function should then return None.

    ``status`` is ``Status.OK`` or ``Status.REJECTED`` (with the workflow's reason), or
    ``Status.FAILED`` with a reason that starts with a ``Failure`` ("tool_error: ..."; see
    ``fail``). Anything else raises at once: a typo must not count as nothing."""
    if not isinstance(status, Status) or status is Status.RUNNING:
        raise TypeError(f"finish(): status must be Status.OK, Status.REJECTED or Status.FAILED, not {status!r}")
    if status is Status.FAILED and Failure.of(reason) is None:
        raise ValueError(f"finish(): a failed task's reason must start with a Failure class "
                         f"({', '.join(Failure)}), not {reason!r}; use fail(orch, Failure.X, message)")
    orch = _orch(task)
    orch.status = status
    orch.reason = reason


def fail(task: Task[Any, Any] | Orchestrator, failure: Failure, message: str) -> None:
    """Mark the task failed with ``failure`` (its record's reason is "<failure>: <message>")."""
    finish(task, Status.FAILED, Failure(failure).reason(message))


def role_backend(conf: SlurmgenConf, role: str) -> str:
    """The backend (sim, vllm, sglang, openai) of the LLM pool ``role`` talks to (for a conf's
    ``resolve``)."""
    from slurmgen.config import pools  # pools finds the workflow's roles through the registry

    return pools.declared(conf)[pools.role_pool(conf, role)].backend
