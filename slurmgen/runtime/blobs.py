"""A peer's spill layer: ``BlobService`` when ``spill.enabled``, else its no-op twin ``NoSpill``.

The data path calls the same five steps either way: ``fill`` a task before its role
runs (and at home), ``spill`` it after, ``strip`` it before it goes on the wire,
``take_refs`` before its record is written and ``free`` them after. With spill on,
every peer on a node opens the same node-local LMDB, so any of them can answer a
FetchBlobs for that node; nothing else runs for it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from pathlib import Path
from typing import Callable, Protocol

import msgspec

from slurmgen.config.types import SpillConf
from slurmgen.proc.faults import fault
from slurmgen.protocol import Blobs, Failure, FetchBlobs, FreeBlobs, Orchestrator
from slurmgen.registry.membership import MemberView
from slurmgen.spill.paths import store_path
from slurmgen.spill.policy import Spiller, SpillLost
from slurmgen.spill.store import BlobStore
from slurmgen.workflow import fail

log = logging.getLogger("slurmgen.blobs")

FETCH_TIMEOUT_S = 10.0

Refs = dict[str, list[str]]  # node -> keys of a task's spilled payloads there
Send = Callable[[str, msgspec.Struct], bool]  # (peer_id, message) -> sent?
BlobMessage = FetchBlobs | Blobs | FreeBlobs


class SpillLayer(Protocol):
    @property
    def fetched_bytes(self) -> int: ...  # payload bytes fetched from other nodes

    @property
    def fetches(self) -> int: ...  # requests to other nodes

    async def fill(self, orch: Orchestrator) -> bool:
        """Bring the task's spilled parts back; False when one is gone (the task is failed ``lost``)."""
        ...

    def spill(self, orch: Orchestrator) -> None: ...  # move new large parts to the node's store
    def strip(self, orch: Orchestrator) -> None: ...  # empty the spilled parts before the wire
    def take_refs(self, orch: Orchestrator) -> Refs: ...  # the task's spilled keys, cleared from it
    def free(self, refs: Refs) -> None: ...  # after the record is written: drop the payloads
    def on_message(self, sender: str, msg: BlobMessage) -> None: ...
    def stats(self) -> dict[str, int]: ...  # the store's counters (slurmgen.spill.store.BlobStore.stats)
    def close(self) -> None: ...


class NoSpill:
    """``spill.enabled=false``: every payload travels inline; nothing to fill, strip or free."""

    fetched_bytes = 0
    fetches = 0

    def __init__(self, received: collections.Counter[str] | None = None) -> None:
        self.received = received if received is not None else collections.Counter()

    async def fill(self, orch: Orchestrator) -> bool:
        return True

    def spill(self, orch: Orchestrator) -> None:
        pass

    def strip(self, orch: Orchestrator) -> None:
        pass

    def take_refs(self, orch: Orchestrator) -> Refs:
        return {}

    def free(self, refs: Refs) -> None:
        pass

    def on_message(self, sender: str, msg: BlobMessage) -> None:
        self.received["blobs_without_spill"] += 1

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


class BlobService:
    def __init__(self, conf: SpillConf, run_root: Path, node: str, view: MemberView, send: Send,
                 received: collections.Counter[str] | None = None) -> None:
        self.node = node
        self.view = view
        self.send = send
        self.received = received if received is not None else collections.Counter()
        self.store = BlobStore(store_path(conf, run_root, node), conf.max_bytes)
        self.spiller = Spiller(self.store, node, conf.threshold_bytes, self._fetch)
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[list[bytes | None]]] = {}

    @property
    def fetched_bytes(self) -> int:
        return self.spiller.fetched_bytes

    @property
    def fetches(self) -> int:
        return self.spiller.fetches

    # -- the data path ----------------------------------------------------------------
    async def fill(self, orch: Orchestrator) -> bool:
        try:
            await self.spiller.fill(orch)
        except SpillLost as exc:  # the payload's node died: the task starts again from its row
            fail(orch, Failure.LOST, f"{exc}")
            return False
        return True

    def spill(self, orch: Orchestrator) -> None:
        self.spiller.spill(orch)

    def strip(self, orch: Orchestrator) -> None:
        Spiller.strip(orch)

    def take_refs(self, orch: Orchestrator) -> Refs:
        refs = self.spiller.refs_by_node(orch)
        Spiller.clear_refs(orch)
        return refs

    def free(self, refs: Refs) -> None:
        """The task is written: drop its payloads wherever they are (a failed free can leak
        payloads, never a task)."""
        if not refs:
            return
        fault("free")
        for node, keys in refs.items():
            if node == self.node:
                self.spiller.free_local(keys)
            elif (peer := self._peer_on(node)) is not None:
                self.send(peer, FreeBlobs(keys=keys))

    # -- other peers' requests and answers --------------------------------------------
    def on_message(self, sender: str, msg: BlobMessage) -> None:
        match msg:
            case FetchBlobs():
                self.received["fetch"] += 1
                blobs = self.store.get_many([k.encode() for k in msg.keys])
                self.send(sender, Blobs(request_id=msg.request_id, blobs=blobs))
            case Blobs():
                fut = self._waiting.get(msg.request_id)
                if fut is not None and not fut.done():
                    fut.set_result(msg.blobs)
            case FreeBlobs():
                self.spiller.free_local(msg.keys)

    def _peer_on(self, node: str) -> str | None:
        peers = [m.peer_id for m in self.view.of_kind("peer") if m.node == node]
        return peers[hash(node) % len(peers)] if peers else None

    async def _fetch(self, node: str, keys: list[str]) -> list[bytes | None]:
        peer = self._peer_on(node)
        if peer is None:
            raise SpillLost(f"no live peer on node {node} holds its spilled payloads")
        request_id = next(self._ids)
        fut: asyncio.Future[list[bytes | None]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = fut
        try:
            if not self.send(peer, FetchBlobs(request_id=request_id, keys=keys)):
                raise SpillLost(f"peer {peer} on node {node} is unreachable")
            return await asyncio.wait_for(fut, FETCH_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise SpillLost(f"node {node} did not return spilled payloads in {FETCH_TIMEOUT_S:.0f} s") from None
        finally:
            self._waiting.pop(request_id, None)

    def stats(self) -> dict[str, int]:
        return self.store.stats()

    def close(self) -> None:
        self.store.close()


def spill_layer(conf: SpillConf, run_root: Path, node: str, view: MemberView, send: Send,
                received: collections.Counter[str]) -> SpillLayer:
    """The layer ``spill.enabled`` asks for."""
    if conf.enabled:
        return BlobService(conf, run_root, node, view, send, received)
    return NoSpill(received)
