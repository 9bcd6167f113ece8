"""How much KV cache the live tasks' conversations hold, for program-aware admission.

A multi-turn task keeps its conversations' prefixes in the servers' prefix caches between
its turns only while the cache has room for every live conversation. Admit more tasks than
that and each newcomer's prompt evicts the prefixes of tasks waiting for their next turn
(on a tool, on their partner), which then prefill their whole history again: the servers
stay busy and finish fewer tasks. The client records, after each reply, the size of the
conversation it belongs to (prompt + reply tokens: what the server has just cached) under
the task the request was made for (``CURRENT_TASK``, set by the worker around each role);
``resident()`` sums the live tasks' conversations, counting a prefix that several
conversations share (a system prompt, the tools) once, and a task that has not reached
the mean peak of the tasks that ended (it will grow) at that peak; the admission gate
(slurmgen.llm.pressure) compares it with the replicas' KV capacity.

A task's entries are dropped when its origin ends it (``forget``) or, for tasks whose hops
ran here but whose origin is elsewhere, once none of its requests was seen for ``stale_s``.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec

from slurmgen.llm.types import ChatMessage

# the task on whose behalf the running coroutine makes its LLM requests (None: no task)
CURRENT_TASK: contextvars.ContextVar[str | None] = contextvars.ContextVar("slurmgen_current_task", default=None)


class Conversation(NamedTuple):
    tokens: int  # prompt + reply tokens after its last request
    shared_id: int  # names the leading part other conversations may share (tools + first message)
    shared_tokens: int  # that part's share of ``tokens``


def shared_prefix(messages: Sequence[ChatMessage], tools: list[dict[str, Any]] | None) -> tuple[int, float]:
    """(id of the tools + first message, their share of the prompt's bytes)."""
    if not messages:
        return 0, 0.0
    head = msgspec.json.encode(tools) if tools else b""
    first = msgspec.json.encode(messages[0])
    rest = sum(len(msgspec.json.encode(m)) for m in messages[1:])
    shared = len(head) + len(first)
    return hash((head, first)), shared / (shared + rest)


class _Task:
    __slots__ = ("conversations", "peak", "seen")

    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}
        self.peak = 0  # the most private tokens it held at once
        self.seen = 0.0

    def private(self) -> int:
        return sum(c.tokens - c.shared_tokens for c in self.conversations.values())


class Footprints:
    """Conversation sizes of the live tasks; see the module docstring."""

    def __init__(self, stale_s: float = 120.0) -> None:
        self.stale_s = stale_s
        self.expected = 0.0  # mean peak private tokens of the tasks that ended here (0: none yet)
        self.ended = 0
        self._tasks: dict[str, _Task] = {}

    def record(self, task_id: str, key: str, tokens: int, shared_id: int, shared_frac: float) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            task = self._tasks[task_id] = _Task()
        task.conversations[key] = Conversation(tokens, shared_id, int(tokens * shared_frac))
        task.peak = max(task.peak, task.private())
        task.seen = time.monotonic()

    def forget(self, task_id: str) -> None:
        """The task ended: its peak joins the mean a live task is expected to reach."""
        task = self._tasks.pop(task_id, None)
        if task is not None and task.peak:
            self.ended += 1
            self.expected += (task.peak - self.expected) / min(self.ended, 100)  # the mean of the last ~100

    def __len__(self) -> int:
        return len(self._tasks)

    def resident(self, live: int = 0) -> int:
        """Tokens the ``live`` tasks' conversations will hold: each known task's size now or the
        mean peak if more, tasks without a reply yet at the mean peak, a shared prefix once."""
        stale = time.monotonic() - self.stale_s
        for task_id in [t for t, task in self._tasks.items() if task.seen < stale]:
            del self._tasks[task_id]
        private = 0.0
        shared: dict[int, int] = {}
        for task in self._tasks.values():
            private += max(task.private(), self.expected)
            for c in task.conversations.values():
                shared[c.shared_id] = max(shared.get(c.shared_id, 0), c.shared_tokens)
        private += max(0, live - len(self._tasks)) * self.expected
        return int(private) + sum(shared.values())
