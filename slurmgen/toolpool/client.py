"""The peers' side of the tool pools: open a task's session, call it, release it.

``ToolPools`` talks to the registered ``"toolpool"`` members over DEALER sockets made by
``slurmgen.transport.sockets`` (CurveZMQ). Requests carry an id; one receiver task per member
resolves the waiting futures. A member that leaves the registry table (its heartbeats
stopped), a request not answered within ``toolpool.call_timeout_s``, or a member that no
longer knows the session (it restarted) raise ``ToolPoolError`` whose ``kind`` follows
``toolpool.on_lost`` — the runtime turns it into a failed task of that class.

``LocalPools`` has the same interface and hosts the sessions in this process (unit
tests, debugging).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from typing import Any, Callable

import msgspec
import zmq
import zmq.asyncio

from slurmgen.errors import ToolPoolError
from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import (
    Failure,
    Member,
    Orchestrator,
    SessionCall,
    SessionClose,
    SessionHandle,
    SessionOpen,
    SessionReply,
)
from slurmgen.toolpool.session import Factory, PoolFull, SessionHost, UnknownSession, session_id
from slurmgen.transport import codec

log = logging.getLogger("slurmgen.toolpool.client")

_raw_null = msgspec.Raw(b"null")


def task_session(orch: Orchestrator, name: str) -> str:
    return session_id(orch.task_id, orch.attempt, name)


def find_handle(orch: Orchestrator, name: str) -> SessionHandle | None:
    return next((h for h in orch.sessions if h.name == name), None)


def lost_kind(on_lost: str) -> Failure:
    return Failure.TOOL_LOST if on_lost == "fail" else Failure.TOOL_ERROR


def _raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


class _Link:
    """A DEALER to one member and its receiver task."""

    def __init__(self, sock: zmq.asyncio.Socket, task: asyncio.Future[None], remote: bool) -> None:
        self.sock = sock
        self.task = task
        self.remote = remote  # the member is on another node than this process
        self.pending: dict[int, asyncio.Future[SessionReply]] = {}


class ToolPools:
    def __init__(self, sockets: Any, members: Callable[[], list[Member]], identity: str, *,
                 call_timeout_s: float = 300.0, on_lost: str = "restart", tasks: TaskSet | None = None,
                 node: str = "") -> None:
        self.sockets = sockets
        self.members = members  # the current "toolpool" members of the registry view
        self.identity = identity
        self.call_timeout_s = call_timeout_s
        self.kind = lost_kind(on_lost)
        self._links: dict[str, _Link] = {}
        self._ids = itertools.count(1)
        self._decoder = codec.tool_reply_decoder()
        self.counts = {"open": 0, "call": 0, "close": 0, "lost": 0}
        self.node = node  # this process's node: requests to members on other nodes are counted
        self.remote_bytes = 0  # requests sent to and replies received from members on other nodes
        self.tasks = tasks if tasks is not None else TaskSet(f"{identity}.tools")  # the receivers

    # -- membership ---------------------------------------------------------------------
    def on_membership(self) -> None:
        """Drop the links of members that left; fail what waits on them."""
        live = {m.peer_id for m in self.members()}
        for member_id in [m for m in self._links if m not in live]:
            self._drop(member_id, f"tool-pool member {member_id} left the registry (died or stopped)")

    def _drop(self, member_id: str, why: str) -> None:
        link = self._links.pop(member_id, None)
        if link is None:
            return
        link.task.cancel()
        for fut in link.pending.values():
            if not fut.done():
                fut.set_exception(ToolPoolError(why, kind=self.kind))
        link.sock.close()

    def _link(self, member_id: str) -> _Link:
        link = self._links.get(member_id)
        if link is not None:
            return link
        member = next((m for m in self.members() if m.peer_id == member_id), None)
        if member is None:
            self.counts["lost"] += 1
            raise ToolPoolError(f"tool-pool member {member_id} is gone (died or stopped)", kind=self.kind)
        sock = self.sockets.connect_dealer(member.address, f"{self.identity}.tools")
        receiver = self.tasks.spawn(self._receive(member_id, sock), kind=f"tool-pool receiver for {member_id}",
                                    on_error=lambda exc: self._drop(member_id, f"its receiver failed: {exc!r}"))
        link = _Link(sock, receiver, remote=member.node != self.node)
        self._links[member_id] = link
        return link

    async def _receive(self, member_id: str, sock: zmq.asyncio.Socket) -> None:
        while True:
            frame = await sock.recv()
            reply = self._decoder.decode(frame)
            link = self._links.get(member_id)
            if link is not None and link.remote:
                self.remote_bytes += len(frame)
            if reply is None or link is None:
                continue
            fut = link.pending.pop(reply.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(reply)

    async def _request(self, member_id: str, make: Callable[[int], msgspec.Struct]) -> SessionReply:
        link = self._link(member_id)
        request_id = next(self._ids)
        fut: asyncio.Future[SessionReply] = asyncio.get_running_loop().create_future()
        link.pending[request_id] = fut
        await self._send(link, codec.encode(make(request_id)))
        try:
            return await asyncio.wait_for(fut, self.call_timeout_s)
        except asyncio.TimeoutError:
            self.counts["lost"] += 1
            raise ToolPoolError(f"tool-pool member {member_id} did not answer within "
                                f"{self.call_timeout_s:.0f} s (toolpool.call_timeout_s)", kind=self.kind) from None
        finally:
            link.pending.pop(request_id, None)

    def _count(self, link: _Link, frame: bytes) -> None:
        if link.remote:
            self.remote_bytes += len(frame)

    async def _send(self, link: _Link, frame: bytes) -> None:
        self._count(link, frame)
        await link.sock.send(frame)

    # -- sessions -----------------------------------------------------------------------
    def _candidates(self, orch: Orchestrator, name: str) -> list[Member]:
        """Every member, starting at one chosen by task and name (spreads sessions evenly; every
        attempt of a task asks the same member first, which then closes the older attempt's session)."""
        members = sorted(self.members(), key=lambda m: m.peer_id)
        if not members:
            return []
        key = f"{orch.task_id}/{name}".encode()
        start = int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") % len(members)
        return members[start:] + members[:start]

    async def open(self, orch: Orchestrator, name: str, spec: Any) -> SessionHandle:
        """The task's session ``name``, created on a member on first use (then sticky)."""
        handle = find_handle(orch, name)
        if handle is not None:
            return handle
        sid = task_session(orch, name)
        candidates = self._candidates(orch, name)
        if not candidates:
            raise ToolPoolError("no tool-pool member is registered (toolpool.size=0, or they all died)",
                                kind=self.kind)
        full = []
        for member in candidates:
            reply = await self._request(member.peer_id, lambda rid: SessionOpen(request_id=rid, session=sid,
                                                                                 spec=_raw(spec)))
            if reply.kind == "full":
                full.append(member.peer_id)
                continue
            if reply.error:
                raise ToolPoolError(f"opening session {sid} on {member.peer_id}: {reply.error}", kind=Failure.TOOL_ERROR)
            handle = SessionHandle(name=name, member=member.peer_id, session=sid)
            orch.sessions = [*orch.sessions, handle]
            self.counts["open"] += 1
            return handle
        raise ToolPoolError(f"every tool-pool member is at capacity ({', '.join(full)}); raise "
                            "toolpool.capacity or toolpool.size", kind=Failure.TOOL_ERROR)

    async def call(self, orch: Orchestrator, name: str, method: str, args: Any) -> Any:
        """Call ``method`` of the task's open session ``name``; return its JSON result."""
        handle = find_handle(orch, name)
        if handle is None:
            raise ToolPoolError(f"task {orch.task_id} has no open session {name!r}", kind=Failure.TOOL_ERROR)
        reply = await self._request(handle.member, lambda rid: SessionCall(
            request_id=rid, session=handle.session, method=method, args=_raw(args)))
        self.counts["call"] += 1
        if reply.kind == "unknown":
            self.counts["lost"] += 1
            raise ToolPoolError(f"session {handle.session} is gone from {handle.member} "
                                "(the member restarted or dropped it)", kind=self.kind)
        if reply.error:
            raise ToolPoolError(f"session {handle.session} on {handle.member}: {method}: {reply.error}",
                                kind=Failure.TOOL_ERROR)
        return msgspec.json.decode(reply.result)

    def release(self, orch: Orchestrator) -> None:
        """Close every session of the task (fire and forget) and forget the handles."""
        for handle in orch.sessions:
            try:
                link = self._link(handle.member)
            except ToolPoolError:
                continue  # the member is gone, and its sessions with it
            frame = codec.encode(SessionClose(session=handle.session))
            self._count(link, frame)
            link.sock.send(frame)
            self.counts["close"] += 1
        orch.sessions = []

    def close(self) -> None:
        for member_id in list(self._links):
            self._drop(member_id, "closing")


class LocalPools:
    """``ToolPools``' interface over sessions hosted in this process."""

    def __init__(self, factory: Factory, capacity: int = 1 << 30) -> None:
        self.host = SessionHost(factory, capacity, idle_s=float("inf"))

    async def open(self, orch: Orchestrator, name: str, spec: Any) -> SessionHandle:
        handle = find_handle(orch, name)
        if handle is not None:
            return handle
        sid = task_session(orch, name)
        try:
            self.host.open(sid, msgspec.json.decode(msgspec.json.encode(spec)))
        except PoolFull as exc:
            raise ToolPoolError(str(exc), kind=Failure.TOOL_ERROR) from None
        handle = SessionHandle(name=name, member="local", session=sid)
        orch.sessions = [*orch.sessions, handle]
        return handle

    async def call(self, orch: Orchestrator, name: str, method: str, args: Any) -> Any:
        handle = find_handle(orch, name)
        if handle is None:
            raise ToolPoolError(f"task {orch.task_id} has no open session {name!r}", kind=Failure.TOOL_ERROR)
        try:
            result = self.host.call(handle.session, method, msgspec.json.decode(msgspec.json.encode(args)))
        except UnknownSession:
            raise ToolPoolError(f"session {handle.session} is gone", kind=Failure.TOOL_ERROR) from None
        return msgspec.json.decode(msgspec.json.encode(result))

    def release(self, orch: Orchestrator) -> None:
        for handle in orch.sessions:
            self.host.close(handle.session)
        orch.sessions = []

    def on_membership(self) -> None:
        pass

    def close(self) -> None:
        self.host.close_all()
