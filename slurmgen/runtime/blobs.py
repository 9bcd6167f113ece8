"""A peer's part in spill: serve its node's payloads, fetch other nodes', free them.

Every peer on a node opens the same node-local LMDB, so any of them can answer a
FetchBlobs for that node; nothing else runs for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path
from typing import Callable

import msgspec

from slurmgen.config.types import SpillConf
from slurmgen.protocol import Blobs, FetchBlobs, FreeBlobs
from slurmgen.registry.membership import MemberView
from slurmgen.spill.paths import store_path
from slurmgen.spill.policy import Spiller, SpillLost
from slurmgen.spill.store import BlobStore

log = logging.getLogger("slurmgen.blobs")

FETCH_TIMEOUT_S = 10.0


class BlobService:
    def __init__(self, conf: SpillConf, run_root: Path, node: str, view: MemberView,
                 send: Callable[[str, msgspec.Struct], bool]) -> None:
        self.node = node
        self.view = view
        self.send = send  # (peer_id, message) -> sent?
        self.store = BlobStore(store_path(conf, run_root, node), conf.max_bytes)
        self.spiller = Spiller(self.store, node, conf.threshold_bytes, self._fetch)
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[list[bytes | None]]] = {}

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

    def on_fetch(self, sender: str, msg: FetchBlobs) -> None:
        blobs = self.store.get_many([k.encode() for k in msg.keys])
        self.send(sender, Blobs(request_id=msg.request_id, blobs=blobs))

    def on_blobs(self, msg: Blobs) -> None:
        fut = self._waiting.get(msg.request_id)
        if fut is not None and not fut.done():
            fut.set_result(msg.blobs)

    def on_free(self, msg: FreeBlobs) -> None:
        self.spiller.free_local(msg.keys)

    def free(self, refs: dict[str, list[str]]) -> None:
        """The task is written: drop its payloads (``Spiller.refs_by_node``) wherever they are."""
        for node, keys in refs.items():
            if node == self.node:
                self.spiller.free_local(keys)
            elif (peer := self._peer_on(node)) is not None:
                self.send(peer, FreeBlobs(keys=keys))

    def close(self) -> None:
        self.store.close()
