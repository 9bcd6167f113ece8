"""A process's side of the registry: register, heartbeat, and a cached member view.

The view survives a registry restart: members missing from a new table are kept for a
grace period (heartbeat x liveness) while everyone re-registers, and the client
re-registers itself when the registry says it does not know it or when
``registry.json`` changes (a restarted registry has new addresses).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Callable

import msgspec
import zmq
import zmq.asyncio

from slurmgen.errors import ProtocolError, StartupError
from slurmgen.proc.faults import fault
from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import Heartbeat, Member, Refused, Register, Table, Unregister, Welcome
from slurmgen.registry.server import RegistryAddress
from slurmgen.transport import codec, curve, sockets

log = logging.getLogger("slurmgen.membership")


class MemberView:
    """Cached members with a grace period for those a table no longer lists."""

    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self.clock = clock
        self.members: dict[str, Member] = {}
        self._seen: dict[str, float] = {}

    def apply(self, table: Table) -> bool:
        now = self.clock()
        before = dict(self.members)
        for m in table.members:
            self.members[m.peer_id] = m
            self._seen[m.peer_id] = now
        for pid in [p for p, t in self._seen.items() if now - t > self.grace_s]:
            self.members.pop(pid, None)
            self._seen.pop(pid, None)
        return before != self.members

    def of_kind(self, kind: str) -> list[Member]:
        return [m for m in self.members.values() if m.kind == kind]


async def wait_for_address(path: Path, timeout_s: float) -> RegistryAddress:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return msgspec.json.decode(path.read_bytes(), type=RegistryAddress)
        except (FileNotFoundError, msgspec.DecodeError):
            if time.monotonic() > deadline:
                raise StartupError(
                    f"no registry address at {path} after {timeout_s:.0f} s: is the registry running? "
                    "(raise run.startup_timeout_s if it is slow to start)"
                ) from None
            await asyncio.sleep(0.1)


class RegistryClient:
    def __init__(self, ctx: zmq.asyncio.Context, address_file: Path, member: Member, *,
                 heartbeat_s: float, liveness: int, on_change: Callable[[], None] = lambda: None,
                 on_unknown: Callable[[], None] = lambda: None, tasks: TaskSet | None = None) -> None:
        self.sockets = sockets.Sockets(ctx, curve.load_if_present(address_file.parent))
        self.address_file = address_file
        self.member = member
        self.heartbeat_s = heartbeat_s
        self.view = MemberView(grace_s=heartbeat_s * liveness)
        self.on_change = on_change
        self.on_unknown = on_unknown  # the registry did not know this process (it expired it, or restarted)
        self.load = 0
        self._dealer: zmq.asyncio.Socket | None = None
        self._sub: zmq.asyncio.Socket | None = None
        self._mtime = 0.0
        self._reregistered_at = -math.inf  # one re-register per heartbeat period, however many Refused
        # the process's task owner: a failed heartbeat / reply / update loop ends the process
        self.tasks = tasks if tasks is not None else TaskSet(member.peer_id)
        self._tasks: list[asyncio.Future[None]] = []
        self._decoder = codec.registry_reply_decoder()

    async def start(self, timeout_s: float) -> None:
        await self._connect(timeout_s)
        self._tasks = [self.tasks.loop(f(), kind=f.__name__.strip("_"))
                       for f in (self._heartbeats, self._replies, self._updates)]

    async def _connect(self, timeout_s: float) -> None:
        address = await wait_for_address(self.address_file, timeout_s)
        self._mtime = self.address_file.stat().st_mtime
        self._close_sockets()
        self._dealer = self.sockets.connect_dealer(address.router, self.member.peer_id)
        self._sub = self.sockets.connect_sub(address.pub)
        await self._dealer.send(codec.encode(Register(member=self.member)))
        deadline = time.monotonic() + timeout_s
        while await self._dealer.poll(250) == 0:
            if self._address_changed():  # the registry restarted meanwhile: register with the new one
                log.warning("registry address changed while registering: reconnecting")
                await self._connect(max(1.0, deadline - time.monotonic()))
                return
            if time.monotonic() > deadline:
                raise StartupError(f"the registry at {address.router} did not answer within {timeout_s:.0f} s")
        self._on_reply(self._decoder.decode(await self._dealer.recv()))

    def _on_reply(self, msg: object) -> None:
        match msg:
            case Welcome(table=table) | (Table() as table):
                if self.view.apply(table):
                    self.on_change()
            case Refused(reason=reason) if reason.startswith("protocol"):
                raise ProtocolError(reason)
            case Refused() if time.monotonic() - self._reregistered_at >= self.heartbeat_s:
                # (heartbeats queued while cut off come back as as many Refused: one re-register);
                # if it fails (logged), the next heartbeat's Refused asks again
                self._reregistered_at = time.monotonic()
                self.on_unknown()
                self.tasks.spawn(self._reregister(), kind="re-register")

    async def _reregister(self) -> None:
        assert self._dealer is not None
        await self._dealer.send(codec.encode(Register(member=self.member)))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            fault(f"heartbeats-{self.member.kind}")
            if self._address_changed():
                log.warning("registry address changed: reconnecting")
                await self._reconnect()
                continue
            assert self._dealer is not None
            await self._dealer.send(codec.encode(Heartbeat(peer_id=self.member.peer_id, load=self.load)))

    async def _reconnect(self) -> None:
        for t in self._tasks[1:]:
            t.cancel()
        await self._connect(self.heartbeat_s * 30)
        self._tasks[1:] = [self.tasks.loop(f(), kind=f.__name__.strip("_")) for f in (self._replies, self._updates)]

    def _address_changed(self) -> bool:
        try:
            return self.address_file.stat().st_mtime != self._mtime
        except FileNotFoundError:
            return False

    async def _replies(self) -> None:
        assert self._dealer is not None
        while True:
            self._on_reply(self._decoder.decode(await self._dealer.recv()))

    async def _updates(self) -> None:
        assert self._sub is not None
        while True:
            msg = self._decoder.decode(await self._sub.recv())
            if isinstance(msg, Table) and self.view.apply(msg):
                self.on_change()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._dealer is not None:
            try:
                await asyncio.wait_for(self._dealer.send(codec.encode(Unregister(peer_id=self.member.peer_id))), 0.5)
            except (asyncio.TimeoutError, zmq.ZMQError):
                pass
        self._close_sockets()

    def _close_sockets(self) -> None:
        for s in (self._dealer, self._sub):
            if s is not None:
                s.close()
