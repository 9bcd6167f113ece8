"""Sending and receiving on the hot path without a future per message.

pyzmq's asyncio wrapper costs a future and an event registration per send and per
receive (about three quarters of a hop's CPU, measured). A peer sends with a
non-blocking call on the socket's synchronous shadow — an async send only when the
queue is full — and drains its inbox with non-blocking receives once it is readable.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Callable

import msgspec
import zmq
import zmq.asyncio

from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import Member
from slurmgen.transport import codec
from slurmgen.transport.sockets import Sockets

DRAIN_BATCH = 256  # frames handled before yielding to other coroutines


class Meter:
    """Frames and bytes sent through the outboxes that share it (a peer's to other nodes)."""

    __slots__ = ("bytes", "frames")

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0


class Outbox:
    """``tasks`` owns the sends that wait for room; one that fails is logged (the frame is
    lost like any message on the wire: the lease of its task re-issues it). ``meter``, when
    given, counts every frame sent."""

    def __init__(self, sock: zmq.asyncio.Socket, tasks: TaskSet | None = None, meter: Meter | None = None) -> None:
        self.sock = sock
        self._sync: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)
        self.tasks = tasks if tasks is not None else TaskSet("outbox")
        self.meter = meter

    def send(self, frame: bytes) -> None:
        if self.meter is not None:
            self.meter.frames += 1
            self.meter.bytes += len(frame)
        try:
            self._sync.send(frame, zmq.NOBLOCK)
        except zmq.Again:  # queue full: wait for room without blocking the loop
            self.tasks.spawn(self.sock.send(frame), kind="queued send")

    def close(self) -> None:
        self.sock.close()


class Outboxes:
    """A peer's outboxes to the other peers, one DEALER each, connected on first use and
    closed when the peer leaves the registry. ``cross_node`` meters every frame sent to a
    peer on another node; ``received`` counts the bytes of each message type sent."""

    def __init__(self, sockets: Sockets, peer_id: str, node: str, members: Callable[[], dict[str, Member]],
                 tasks: TaskSet, received: collections.Counter[str]) -> None:
        self.sockets, self.peer_id, self.node, self.members = sockets, peer_id, node, members
        self.tasks, self.received = tasks, received
        self.boxes: dict[str, Outbox] = {}
        self.cross_node = Meter()

    def get(self, peer_id: str) -> Outbox | None:
        """The outbox to ``peer_id``; None for a peer the registry does not list."""
        box = self.boxes.get(peer_id)
        if box is None:
            member = self.members().get(peer_id)
            if member is None:
                return None
            box = self.boxes[peer_id] = Outbox(self.sockets.connect_dealer(member.address, self.peer_id),
                                               self.tasks, self.cross_node if member.node != self.node else None)
        return box

    def send_msg(self, peer_id: str, msg: msgspec.Struct) -> bool:
        """Send one message; False for a peer the registry does not list."""
        box = self.get(peer_id)
        if box is None:
            return False
        frame = codec.encode(msg)
        self.received[f"bytes_{type(msg).__name__}_sent"] += len(frame)
        box.send(frame)
        return True

    def prune(self, live: set[str]) -> list[str]:
        """Close the outboxes of peers no longer live; return their ids."""
        gone = [pid for pid in self.boxes if pid not in live]
        for pid in gone:
            self.boxes.pop(pid).close()
        return gone

    def close(self) -> None:
        for box in self.boxes.values():
            box.close()


async def drain(inbox: zmq.asyncio.Socket, handle: Callable[[list[bytes]], None]) -> None:
    """Call ``handle`` on every multipart message arriving at ``inbox``, forever.

    The socket's file descriptor wakes the loop (edge-triggered, as ZeroMQ's is); then
    non-blocking reads drain it. No coroutine method of ``inbox`` may be used meanwhile.
    """
    sync: zmq.Socket[bytes] = zmq.Socket.shadow(inbox.underlying)
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    fd = int(sync.getsockopt(zmq.FD))  # an int for FD (pyzmq types every option int | bytes)
    loop.add_reader(fd, ready.set)
    try:
        while True:
            for _ in range(DRAIN_BATCH):
                try:
                    frames = sync.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                handle(frames)
            else:  # more may be queued: let other coroutines run, then go on
                await asyncio.sleep(0)
                continue
            ready.clear()
            if not int(sync.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                await ready.wait()
    finally:
        loop.remove_reader(fd)
