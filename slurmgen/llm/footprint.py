"""How much KV cache a task's conversations hold, for program-aware admission.

A multi-turn task keeps its conversations' prefixes in the servers' prefix caches between
its turns only while the cache has room for every live conversation. Admit more tasks than
that and each newcomer's prompt evicts the prefixes of tasks waiting for their next turn
(on a tool, on their partner), which then prefill their whole history again: the servers
stay busy and finish fewer tasks.

Under ``llm.scheduling_policy=priority`` the client records, after each reply, the size of
the conversation it belongs to (prompt + reply tokens: what the server has just cached) in
the task's message (``Orchestrator.kv``, on whichever peer the hop ran: ``CURRENT_TASK`` is
set by the worker around each role). When a task ends its origin folds its footprint (its
conversations' private tokens; a prefix several conversations share, a system prompt or the
tools, apart) into ``Footprints``; ``resident(live)`` = live tasks x the mean footprint of
the tasks that ended + each shared prefix once, which the admission gate
(slurmgen.llm.pressure) compares with the replicas' KV capacity.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec

from slurmgen.llm.types import ChatMessage
from slurmgen.protocol import KVUse, Orchestrator

# the task on whose behalf the running coroutine makes its LLM requests (None: no task)
CURRENT_TASK: contextvars.ContextVar[Orchestrator | None] = contextvars.ContextVar("slurmgen_current_task",
                                                                                   default=None)


def kv_use(messages: Sequence[ChatMessage], tools: list[dict[str, Any]] | None, tokens: int,
           prompt_bytes: int | None = None) -> KVUse:
    """A conversation of ``tokens`` (prompt + reply): its shared part by the bytes of the tools + first message.

    ``prompt_bytes``: the size of the request already encoded (the client's body), so that the
    other messages are not encoded again; by default they are."""
    if not messages:
        return KVUse(tokens, 0, 0)
    head = msgspec.json.encode(tools) if tools else b""
    first = msgspec.json.encode(messages[0])
    shared = len(head) + len(first)
    if prompt_bytes is None:
        prompt_bytes = shared + sum(len(msgspec.json.encode(m)) for m in messages[1:])
    prefix_id = int.from_bytes(hashlib.blake2b(head + first, digest_size=7).digest(), "big")  # the same on every peer
    return KVUse(tokens, int(tokens * min(1.0, shared / prompt_bytes)), prefix_id)


class Footprints:
    """The mean KV footprint of the tasks that ended, and the shared prefixes; see the module docstring."""

    def __init__(self, window: int = 100) -> None:
        self.window = window  # the mean is over about this many recent tasks
        self.expected = 0.0  # mean private tokens of a task's conversations at its end (0: none ended yet)
        self.ended = 0
        self.shared: dict[int, int] = {}  # tokens of each shared prefix seen

    def task_ended(self, orch: Orchestrator) -> None:
        if not orch.kv:
            return
        private = sum(c.tokens - c.shared for c in orch.kv.values())
        self.ended += 1
        self.expected += (private - self.expected) / min(self.ended, self.window)
        for c in orch.kv.values():
            if c.shared_id:
                self.shared[c.shared_id] = max(self.shared.get(c.shared_id, 0), c.shared)

    def resident(self, live: int) -> int:
        """Tokens ``live`` tasks' conversations are expected to hold, each shared prefix once."""
        return int(live * self.expected) + sum(self.shared.values())
