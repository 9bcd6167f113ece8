"""What the client remembers to route for the servers' prefix caches, and to rank tasks.

Prefix-aware routing (``llm.routing=prefix``), after vllm-router's ``cache_aware`` policy:
a request's prompt is a chain of messages; each message gets a hash chained to the one
before it (the tools first), so a hash names the whole prompt up to that message. Each
replica remembers the chains it was sent (the most recent ``PrefixIndex.capacity``
hashes). A request goes to the replica holding the longest part of its prompt when that
part exceeds ``prefix_match`` of it (ties: the least loaded); otherwise, and whenever the
load is out of balance (the busiest replica has more than ``balance_abs`` requests
outstanding and more than ``balance_rel`` times the idlest's), to the least loaded. The
replica a match picks is also held to ``sticky_load_factor`` as sticky routing is (over
that times the mean outstanding: the least loaded instead), so that conversations sharing
a system prompt do not all pile onto the first replica that was sent it.

Task priority (``llm.scheduling_policy=priority``): a request's ``priority`` is the time
its conversation (its sticky key) was first seen, in milliseconds: lower is served first,
so the servers finish the programs they started before feeding new ones.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgspec

from slurmgen.llm.types import ChatMessage


def message_chain(messages: Sequence[ChatMessage], tools: list[dict[str, Any]] | None) -> tuple[list[int], list[int]]:
    """(hash, prompt bytes up to and including it) of each message, chained from the tools."""
    parent = hash(msgspec.json.encode(tools)) if tools else 0
    size = 0
    hashes, ends = [], []
    for m in messages:
        raw = msgspec.json.encode(m)
        parent = hash((parent, raw))
        size += len(raw)
        hashes.append(parent)
        ends.append(size)
    return hashes, ends


class Routing(msgspec.Struct, frozen=True, kw_only=True):
    """Which replica a request goes to (``llm.routing`` and its knobs, see ``LLMConf``)."""

    policy: str = "least_outstanding"  # prefix | sticky | least_outstanding
    sticky_load_factor: float = 1.25  # bounded load of a sticky (or prefix) choice; 0 = always
    prefix_match: float = 0.3  # prefix: the share of the prompt a replica must hold
    balance_abs: int = 64  # prefix: least loaded when the busiest has more outstanding than this
    balance_rel: float = 1.5  # ... and more than this times the idlest's
    send_priority: bool = False  # the servers run --scheduling-policy priority


DEFAULT_ROUTING = Routing()


class PrefixIndex:
    """The message-chain hashes one replica was sent, the most recent ``capacity`` of them."""

    __slots__ = ("_seen", "capacity")

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[int, None] = OrderedDict()

    def match(self, hashes: Sequence[int]) -> int:
        """How many leading messages of the chain this replica was sent (a hash names its whole prefix)."""
        for n in range(len(hashes), 0, -1):
            if hashes[n - 1] in self._seen:
                return n
        return 0

    def add(self, hashes: Sequence[int]) -> None:
        seen = self._seen
        for h in hashes:
            seen[h] = None
            seen.move_to_end(h)
        while len(seen) > self.capacity:
            seen.popitem(last=False)


class TaskAges:
    """When each conversation (sticky key) was first seen, for its requests' priority."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._first: OrderedDict[str, int] = OrderedDict()

    def priority(self, key: str | None) -> int:
        now = int(time.time() * 1000)
        if key is None:
            return now
        first = self._first.setdefault(key, now)
        self._first.move_to_end(key)
        if len(self._first) > self.capacity:
            self._first.popitem(last=False)
        return first
