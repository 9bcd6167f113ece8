"""ToolPools against in-process members: sticky sessions, capacity, release, lost members."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from slurmgen.errors import ToolPoolError
from slurmgen.protocol import (
    Member,
    Orchestrator,
    SessionCall,
    SessionClose,
    SessionOpen,
    SessionReply,
)
from slurmgen.toolpool.admission import Admission
from slurmgen.toolpool.client import LocalPools, ToolPools
from slurmgen.toolpool.session import SessionHost, UnknownSession
from slurmgen.transport import codec


class Counter:
    def __init__(self, spec: dict) -> None:
        self.n = spec["start"]

    def call(self, method: str, args: dict) -> int:
        if method == "boom":
            raise ValueError("boom")
        self.n += 1
        return self.n

    def close(self) -> None:
        pass


class FakeMember:
    """A member's request handling (as slurmgen.toolpool.server, with its admission) behind a fake
    DEALER; the work is done at once, so an open waits only for room."""

    def __init__(self, capacity: int = 10, silent: bool = False) -> None:
        self.host = SessionHost(Counter, capacity, idle_s=1e9)
        self.admission = Admission(capacity)
        self.silent = silent
        self.closed: list[str] = []
        self.most_open = 0

    def answer(self, frame: bytes, reply_to: asyncio.Queue[bytes]) -> None:
        msg = codec.tool_request_decoder().decode(frame)
        if isinstance(msg, SessionClose):
            self.closed.append(msg.session)
            if not self.admission.cancel(msg.session):
                self.host.close(msg.session)
                self._admit()
            return
        if self.silent:
            return
        if isinstance(msg, SessionOpen):
            verdict = self.admission.offer(reply_to, msg, len(self.host), msg.session in self.host)
            if verdict != "start":
                kind = "queued" if verdict == "queued" else "full"
                reply_to.put_nowait(codec.encode(SessionReply(request_id=msg.request_id, kind=kind,
                                                              error="" if kind == "queued" else "no room")))
                return
        self._work(msg, reply_to)

    def _work(self, msg: SessionOpen | SessionCall, reply_to: asyncio.Queue[bytes]) -> None:
        try:
            if isinstance(msg, SessionOpen):
                self.host.open(msg.session, msgspec.json.decode(msg.spec))
                self.most_open = max(self.most_open, len(self.host))
                reply = SessionReply(request_id=msg.request_id)
            else:
                result = self.host.call(msg.session, msg.method, msgspec.json.decode(msg.args))
                reply = SessionReply(request_id=msg.request_id, result=msgspec.Raw(msgspec.json.encode(result)))
        except UnknownSession:
            reply = SessionReply(request_id=msg.request_id, error="no session", kind="unknown")
        except Exception as exc:  # noqa: BLE001  (as the server: a session's bug fails its call)
            reply = SessionReply(request_id=msg.request_id, error=str(exc), kind="error")
        reply_to.put_nowait(codec.encode(reply))
        if isinstance(msg, SessionOpen):
            self.admission.finished()
            self._admit()

    def _admit(self) -> None:
        waiting = self.admission.next(len(self.host))
        if waiting is not None:
            self._work(waiting.msg, waiting.reply_to)


class FakeDealer:
    def __init__(self, member: FakeMember) -> None:
        self.member = member
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def send(self, frame: bytes) -> asyncio.Future[None]:
        self.member.answer(frame, self.replies)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def recv(self) -> bytes:
        return await self.replies.get()

    def close(self) -> None:
        pass


class FakeSockets:
    def __init__(self, members: dict[str, FakeMember]) -> None:
        self.members = members

    def connect_dealer(self, address: str, identity: str) -> FakeDealer:
        return FakeDealer(self.members[address])


def pools(members: dict[str, FakeMember], **kw: object) -> tuple[ToolPools, list[Member]]:
    table = [Member(peer_id=name, kind="toolpool", address=name, capacity=10) for name in members]
    return ToolPools(FakeSockets(members), lambda: table, "peer-0", **kw), table  # type: ignore[arg-type]


def orch(task: str = "r:0", attempt: int = 0) -> Orchestrator:
    return Orchestrator(task_id=task, row_id="r", trial=0, seed=1, origin="peer-0", attempt=attempt)


def test_a_session_is_sticky_and_travels_in_the_message() -> None:
    async def go() -> None:
        members = {"pool-0": FakeMember(), "pool-1": FakeMember()}
        client, _ = pools(members)
        o = orch()
        handle = await client.open(o, "env", {"start": 10})
        assert o.sessions == [handle] and handle.session == "r:0#0/env"
        assert await client.open(o, "env", {"start": 99}) == handle  # opened once
        assert [await client.call(o, "env", "add", {}) for _ in range(3)] == [11, 12, 13]
        assert sum(len(m.host) for m in members.values()) == 1 and len(members[handle.member].host) == 1
        client.release(o)
        assert o.sessions == [] and members[handle.member].closed == ["r:0#0/env"]
        assert len(members[handle.member].host) == 0

    asyncio.run(go())


def test_sessions_spread_over_members_and_skip_a_full_one() -> None:
    async def go() -> None:
        members = {"pool-0": FakeMember(capacity=0), "pool-1": FakeMember()}
        client, _ = pools(members)
        handles = [await client.open(orch(f"r{i}:0"), "env", {"start": 0}) for i in range(6)]
        assert {h.member for h in handles} == {"pool-1"}
        spread, _ = pools({"a": FakeMember(), "b": FakeMember()})
        owners = {(await spread.open(orch(f"t{i}:0"), "env", {"start": 0})).member for i in range(16)}
        assert owners == {"a", "b"}

    asyncio.run(go())


def test_at_capacity_a_task_waits_its_turn_and_never_fails() -> None:
    """Two members of capacity 2, 12 tasks at once: 4 open, 8 queued; each release admits the
    next in arrival order; no member ever holds more than 2; a task let go while queued leaves."""
    async def go() -> None:
        members = {"pool-0": FakeMember(capacity=2), "pool-1": FakeMember(capacity=2)}
        client, _ = pools(members, call_timeout_s=0.05)  # queued opens outlive the call timeout
        tasks = [orch(f"r{i}:0") for i in range(12)]
        opens = [asyncio.ensure_future(client.open(o, "env", {"start": i})) for i, o in enumerate(tasks)]
        await asyncio.sleep(0.2)
        done = [o for o, f in zip(tasks, opens) if f.done()]
        assert len(done) == 4 and client.waiting == 8
        assert client.counts["refused"] >= 8 and client.counts["queued"] == 8
        gone = next(o for o, f in zip(tasks, opens) if not f.done())
        opens[tasks.index(gone)].cancel()  # e.g. its lease ran out: it leaves the queue
        await asyncio.sleep(0.01)
        assert sum(len(m.admission.queue) for m in members.values()) == 7
        finished = 0
        while finished < 11:
            ready = [o for o, f in zip(tasks, opens) if f.done() and not f.cancelled() and o.sessions]
            assert ready, "a queued open is stuck"
            for o in ready:
                assert await client.call(o, "env", "add", {}) >= 1
                client.release(o)
                finished += 1
            await asyncio.sleep(0.01)
        assert all(m.most_open <= 2 for m in members.values())
        assert all(len(m.host) == 0 and not m.admission.queue for m in members.values())
        assert gone.sessions == [] and client.waiting == 0

    asyncio.run(go())


def test_every_attempt_of_a_task_goes_to_the_same_member_which_frees_the_older_session() -> None:
    async def go() -> None:
        members = {f"pool-{i}": FakeMember() for i in range(4)}
        client, _ = pools(members)
        for i in range(8):
            first = await client.open(orch(f"r{i}:0", attempt=0), "env", {"start": 0})
            again = await client.open(orch(f"r{i}:0", attempt=1), "env", {"start": 0})
            assert again.member == first.member
        assert sum(len(m.host) for m in members.values()) == 8  # one live session per task
        assert sum(m.host.superseded for m in members.values()) == 8

    asyncio.run(go())


@pytest.mark.parametrize("policy,kind", [("restart", "tool_error"), ("fail", "tool_lost")])
def test_a_member_that_leaves_fails_waiting_calls_with_the_policy_kind(policy: str, kind: str) -> None:
    async def go() -> None:
        members = {"pool-0": FakeMember()}
        client, table = pools(members, on_lost=policy)
        o = orch()
        await client.open(o, "env", {"start": 0})
        members["pool-0"].silent = True  # it stops answering ...
        call = asyncio.ensure_future(client.call(o, "env", "add", {}))
        await asyncio.sleep(0.01)
        table.clear()  # ... and leaves the registry table
        client.on_membership()
        with pytest.raises(ToolPoolError) as err:
            await call
        assert err.value.kind == kind
        with pytest.raises(ToolPoolError) as err2:  # later calls fail at once
            await client.call(o, "env", "add", {})
        assert err2.value.kind == kind
        client.release(o)  # nothing to send to a gone member
        assert o.sessions == []

    asyncio.run(go())


def test_an_unknown_session_and_a_timeout_count_as_lost_and_a_raising_method_as_tool_error() -> None:
    async def go() -> None:
        members = {"pool-0": FakeMember()}
        client, _ = pools(members, on_lost="fail", call_timeout_s=0.05)
        o = orch()
        await client.open(o, "env", {"start": 0})
        with pytest.raises(ToolPoolError) as boom:
            await client.call(o, "env", "boom", {})
        assert boom.value.kind == "tool_error" and "boom" in str(boom.value)
        members["pool-0"].host.close_all()  # the member restarted: it no longer knows the session
        with pytest.raises(ToolPoolError) as unknown:
            await client.call(o, "env", "add", {})
        assert unknown.value.kind == "tool_lost"
        members["pool-0"].silent = True
        with pytest.raises(ToolPoolError, match="did not answer") as late:
            await client.call(o, "env", "add", {})
        assert late.value.kind == "tool_lost"
        with pytest.raises(ToolPoolError, match="no open session"):
            await client.call(orch("other:0"), "env", "add", {})

    asyncio.run(go())


def test_no_member_registered() -> None:
    async def go() -> None:
        client, _ = pools({})
        with pytest.raises(ToolPoolError, match="no tool-pool member"):
            await client.open(orch(), "env", {"start": 0})

    asyncio.run(go())


def test_local_pools_have_the_same_interface() -> None:
    async def go() -> None:
        local = LocalPools(Counter)
        o = orch(attempt=2)
        handle = await local.open(o, "env", {"start": 5})
        assert handle.session == "r:0#2/env"
        assert await local.call(o, "env", "add", {}) == 6
        local.release(o)
        assert o.sessions == [] and len(local.host) == 0
        small = LocalPools(Counter, capacity=1)
        first, second = orch("a:0"), orch("b:0")
        await small.open(first, "env", {"start": 0})
        waiting = asyncio.ensure_future(small.open(second, "env", {"start": 0}))
        await asyncio.sleep(0.01)
        assert not waiting.done() and small.waiting == 1
        small.release(first)
        await waiting
        assert second.sessions and len(small.host) == 1

    asyncio.run(go())
