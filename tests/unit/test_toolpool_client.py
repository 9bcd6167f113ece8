"""ToolPools against in-process members: sticky sessions, capacity, release, lost members."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from slurmgen.errors import ToolPoolError
from slurmgen.protocol import Member, Orchestrator, SessionCall, SessionClose, SessionOpen, SessionReply
from slurmgen.toolpool.client import LocalPools, ToolPools
from slurmgen.toolpool.session import PoolFull, SessionHost, UnknownSession
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
    """A member's request handling (as slurmgen.toolpool.server) behind a fake DEALER."""

    def __init__(self, capacity: int = 10, silent: bool = False) -> None:
        self.host = SessionHost(Counter, capacity, idle_s=1e9)
        self.silent = silent
        self.closed: list[str] = []

    def answer(self, frame: bytes) -> SessionReply | None:
        msg = codec.tool_request_decoder().decode(frame)
        if isinstance(msg, SessionClose):
            self.closed.append(msg.session)
            self.host.close(msg.session)
            return None
        if self.silent:
            return None
        assert isinstance(msg, (SessionOpen, SessionCall))
        try:
            if isinstance(msg, SessionOpen):
                self.host.open(msg.session, msgspec.json.decode(msg.spec))
                return SessionReply(request_id=msg.request_id)
            result = self.host.call(msg.session, msg.method, msgspec.json.decode(msg.args))
            return SessionReply(request_id=msg.request_id, result=msgspec.Raw(msgspec.json.encode(result)))
        except UnknownSession:
            return SessionReply(request_id=msg.request_id, error="no session", kind="unknown")
        except PoolFull as exc:
            return SessionReply(request_id=msg.request_id, error=str(exc), kind="full")
        except Exception as exc:  # noqa: BLE001 - the fake member answers an error as the real one does
            return SessionReply(request_id=msg.request_id, error=str(exc), kind="error")


class FakeDealer:
    def __init__(self, member: FakeMember) -> None:
        self.member = member
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def send(self, frame: bytes) -> asyncio.Future[None]:
        reply = self.member.answer(frame)
        if reply is not None:
            self.replies.put_nowait(codec.encode(reply))
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
        members["pool-1"].host.capacity = 6
        with pytest.raises(ToolPoolError, match="capacity"):
            await client.open(orch("x:0"), "env", {"start": 0})
        spread, _ = pools({"a": FakeMember(), "b": FakeMember()})
        owners = {(await spread.open(orch(f"t{i}:0"), "env", {"start": 0})).member for i in range(16)}
        assert owners == {"a", "b"}

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

    asyncio.run(go())
