"""Which parts of a task travel as SpillRefs, and how they come back.

Spilled: the input row and any turn's content over ``threshold`` bytes. A peer that
runs a role first *fills* the task (local LMDB read, or a fetch from a peer on the
owning node, cached); a peer that only forwards never touches the bytes. Before a
task leaves the process it is *stripped*: spilled parts are emptied on the wire.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Awaitable, Callable

import msgspec

from slurmgen.protocol import Orchestrator, SpillRef
from slurmgen.spill.store import BlobStore

log = logging.getLogger("slurmgen.spill")

Fetch = Callable[[str, list[str]], Awaitable[list[bytes | None]]]  # (node, keys) -> blobs


class SpillLost(Exception):
    """A spilled payload is gone (its node died or it was freed): the task must start again."""


def _key(task_id: str, data: bytes) -> str:
    return f"{task_id}/{hashlib.blake2b(data, digest_size=12).hexdigest()}"


class Spiller:
    def __init__(self, store: BlobStore, node: str, threshold: int, fetch: Fetch, cache_items: int = 4096) -> None:
        self.store = store
        self.node = node
        self.threshold = threshold
        self.fetch = fetch
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_items = cache_items
        self.fetched_bytes = 0  # payload bytes fetched from other nodes
        self.fetches = 0  # requests to other nodes

    # -- out --------------------------------------------------------------------------
    def spill(self, orch: Orchestrator) -> None:
        """Move new large parts of the task to the store (they stay filled in memory)."""
        items: list[tuple[bytes, bytes]] = []
        refs: list[tuple[object, SpillRef]] = []
        if orch.row_ref is None and len(orch.row) > self.threshold:
            data = bytes(orch.row)
            ref = SpillRef(node=self.node, key=_key(orch.task_id, data), size=len(data))
            items.append((ref.key.encode(), data))
            refs.append((orch, ref))
        for turn in orch.history:
            if turn.content_ref is None and len(turn.content) > self.threshold:
                data = turn.content.encode()
                ref = SpillRef(node=self.node, key=_key(orch.task_id, data), size=len(data))
                items.append((ref.key.encode(), data))
                refs.append((turn, ref))
        if not items or not self.store.put_many(items):
            return
        for owner, ref in refs:
            if owner is orch:
                orch.row_ref = ref
            else:
                owner.content_ref = ref  # type: ignore[attr-defined]  # owner is a Turn here (orch was handled above)

    @staticmethod
    def strip(orch: Orchestrator) -> None:
        """Empty the spilled parts before the task goes on the wire."""
        if orch.row_ref is not None:
            orch.row = msgspec.Raw(b"null")
        for turn in orch.history:
            if turn.content_ref is not None:
                turn.content = ""

    @staticmethod
    def clear_refs(orch: Orchestrator) -> None:
        """Before the record is written: the payloads are freed, the refs mean nothing."""
        orch.row_ref = None
        for turn in orch.history:
            turn.content_ref = None

    # -- in ---------------------------------------------------------------------------
    async def fill(self, orch: Orchestrator) -> None:
        """Bring every spilled part of the task back into memory."""
        wanted = self._missing(orch)
        if not wanted:
            return
        blobs = await self._get([ref for ref in wanted.values()])
        if orch.row_ref is not None and orch.row_ref.key in blobs:
            orch.row = msgspec.Raw(blobs[orch.row_ref.key])
        for turn in orch.history:
            if turn.content_ref is not None and turn.content_ref.key in blobs:
                turn.content = blobs[turn.content_ref.key].decode()

    def _missing(self, orch: Orchestrator) -> dict[str, SpillRef]:
        wanted: dict[str, SpillRef] = {}
        if orch.row_ref is not None and bytes(orch.row) == b"null":
            wanted[orch.row_ref.key] = orch.row_ref
        for turn in orch.history:
            if turn.content_ref is not None and not turn.content:
                wanted[turn.content_ref.key] = turn.content_ref
        return wanted

    async def _get(self, refs: list[SpillRef]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        by_node: dict[str, list[str]] = {}
        for ref in refs:
            if ref.key in self._cache:
                self._cache.move_to_end(ref.key)
                found[ref.key] = self._cache[ref.key]
            else:
                by_node.setdefault(ref.node, []).append(ref.key)
        for node, keys in by_node.items():
            if node == self.node:
                blobs = self.store.get_many([k.encode() for k in keys])
            else:
                self.fetches += 1
                blobs = await self.fetch(node, keys)
            for key, blob in zip(keys, blobs):
                if blob is None:
                    raise SpillLost(f"spilled payload {key} on node {node} is gone")
                found[key] = blob
                if node != self.node:
                    self.fetched_bytes += len(blob)
                    self._remember(key, blob)
        return found

    def _remember(self, key: str, blob: bytes) -> None:
        self._cache[key] = blob
        while len(self._cache) > self._cache_items:
            self._cache.popitem(last=False)

    # -- free -------------------------------------------------------------------------
    def refs_by_node(self, orch: Orchestrator) -> dict[str, list[str]]:
        """Every spilled key of the task, grouped by the node that holds it."""
        out: dict[str, list[str]] = {}
        refs = [orch.row_ref] + [t.content_ref for t in orch.history]
        for ref in refs:
            if ref is not None:
                out.setdefault(ref.node, []).append(ref.key)
        return out

    def free_local(self, keys: list[str]) -> None:
        self.store.delete_many([k.encode() for k in keys])
        for k in keys:
            self._cache.pop(k, None)
