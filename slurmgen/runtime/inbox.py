"""A peer's inbox: every frame arriving at its ROUTER socket, handed to the part it is for.

A task with a next role starts a hop here; a finished one comes home to this origin; a
Hold renews leases, a Credit frees a slot at its sender, spill messages go to the spill
layer. A frame that is no message (wrong shape, refused by the codec) is counted as
``malformed`` and dropped.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import zmq.asyncio

from slurmgen.proc.faults import fault
from slurmgen.protocol import Blobs, Credit, FetchBlobs, FreeBlobs, Hold, Orchestrator
from slurmgen.runtime.blobs import SpillLayer
from slurmgen.runtime.dispatch import Dispatcher
from slurmgen.runtime.hops import Hops
from slurmgen.runtime.origin import Origin
from slurmgen.runtime.outbox import drain
from slurmgen.transport import codec


class Inbox:
    def __init__(self, sock: zmq.asyncio.Socket, received: collections.Counter[str], *, dispatch: Dispatcher,
                 hops: Hops, origin: Origin, spill: SpillLayer, home: Callable[[Orchestrator], None]) -> None:
        """``home(orch)`` starts a task's homecoming (``Origin.come_home``)."""
        self.sock, self.received = sock, received
        self.dispatch, self.hops, self.origin, self.spill, self.home = dispatch, hops, origin, spill, home
        self.decoder = codec.peer_decoder()

    async def receive(self) -> None:
        """Forever: hand every frame on to its part."""
        await drain(self.sock, self.on_frames)

    def on_frames(self, frames: list[bytes]) -> None:
        fault("receiver")
        if len(frames) != 2:
            self.received["malformed"] += 1
            return
        sender = frames[0].decode(errors="replace")
        msg = self.decoder.decode(frames[1])
        match msg:
            case Orchestrator() if not msg.next_role:
                self.received["orch_home"] += 1
                self.home(msg)
            case Orchestrator():
                self.received["orch"] += 1
                self.dispatch.held[msg.task_id] = msg
                self.hops.start(msg, sender)
            case Hold(task_ids=task_ids):
                self.received["hold"] += 1
                self.origin.renew(task_ids)
            case FetchBlobs() | Blobs() | FreeBlobs():
                self.spill.on_message(sender, msg)
            case Credit(n=n):
                self.received["credit"] += 1
                self.dispatch.credited(sender, n)
            case None:
                self.received["malformed"] += 1

    @property
    def refused(self) -> int:
        """Frames the codec refused."""
        return self.decoder.refused
