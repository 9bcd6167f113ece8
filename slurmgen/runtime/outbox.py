"""Sending and receiving on the hot path without a future per message.

pyzmq's asyncio wrapper costs a future and an event registration per send and per
receive (about three quarters of a hop's CPU, measured). A peer sends with a
non-blocking call on the socket's synchronous shadow — an async send only when the
queue is full — and drains its inbox with non-blocking receives once it is readable.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import zmq
import zmq.asyncio

from slurmgen.proc.tasks import TaskSet

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
