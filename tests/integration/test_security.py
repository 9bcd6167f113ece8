"""CurveZMQ: a process without the run's keys can neither register, inject nor read."""

import asyncio
import subprocess
import sys
import time

import msgspec
import pytest
import zmq
import zmq.asyncio

from slurmgen.protocol import Heartbeat, Member, Orchestrator, Refused, Register, Stats, StatsReply, Table, Welcome
from slurmgen.registry.server import RegistryAddress
from slurmgen.rundir import RunDir
from slurmgen.transport import codec, curve, sockets

MEMBER = Member(peer_id="intruder", kind="peer", address="tcp://127.0.0.1:1")


@pytest.fixture
def registry(tmp_path):
    run = RunDir(tmp_path).make()
    curve.generate(run.root)
    proc = subprocess.Popen([sys.executable, "-m", "slurmgen.registry.server", "--run-dir", str(run.root)])
    deadline = time.time() + 30
    while not run.registry_address.exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    yield run, msgspec.json.decode(run.registry_address.read_bytes(), type=RegistryAddress)
    proc.terminate()
    proc.wait(10)


async def ask(sock: zmq.asyncio.Socket, msg: msgspec.Struct, wait_s: float = 1.5) -> object:
    await sock.send(codec.encode(msg))
    if await sock.poll(wait_s * 1000) == 0:
        return None
    return codec.registry_reply_decoder().decode(await sock.recv())


def plain_dealer(ctx: zmq.asyncio.Context, address: str) -> zmq.asyncio.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    return sock


def test_plain_and_foreign_clients_cannot_register_or_listen(registry):
    run, address = registry

    async def scenario() -> None:
        ctx = zmq.asyncio.Context()
        plain = plain_dealer(ctx, address.router)
        assert await ask(plain, Register(member=MEMBER)) is None
        foreign_pub, foreign_secret = zmq.curve_keypair()
        keys = curve.load(run.root)
        foreign = ctx.socket(zmq.DEALER)
        foreign.linger = 0
        foreign.curve_serverkey, foreign.curve_publickey, foreign.curve_secretkey = (
            keys.server_public, foreign_pub, foreign_secret)
        foreign.connect(address.router)
        assert await ask(foreign, Register(member=MEMBER)) is None  # right server key, unknown client key
        spy = ctx.socket(zmq.SUB)
        spy.linger = 0
        spy.subscribe(b"")
        spy.connect(address.pub)
        good = sockets.Sockets(ctx, keys)
        member = Member(peer_id="legit", kind="peer", address="tcp://127.0.0.1:2")
        dealer = good.connect_dealer(address.router, "legit")
        assert isinstance(await ask(dealer, Register(member=member), 10), Welcome)
        assert await spy.poll(3000) == 0  # the registry publishes every 2 s; the spy hears nothing
        listener = good.connect_sub(address.pub)
        assert await listener.poll(5000) != 0
        assert isinstance(codec.registry_reply_decoder().decode(await listener.recv()), Table)
        stats = await ask(dealer, Stats(), 5)
        assert isinstance(stats, StatsReply) and stats.received.get("Register") == 1, stats
        for s in (plain, foreign, spy, dealer, listener):
            s.close()
        ctx.term()

    asyncio.run(scenario())


def test_another_protocol_version_is_refused_with_both_versions(registry):
    run, address = registry

    async def scenario() -> None:
        ctx = zmq.asyncio.Context()
        dealer = sockets.Sockets(ctx, curve.load(run.root)).connect_dealer(address.router, "old")
        reply = await ask(dealer, Register(member=MEMBER, protocol=999), 10)
        assert isinstance(reply, Refused)
        assert "999" in reply.reason and "version 1" in reply.reason
        dealer.close()
        ctx.term()

    asyncio.run(scenario())


def test_a_peer_inbox_refuses_plain_injection(tmp_path):
    curve.generate(tmp_path)
    keys = curve.load(tmp_path)

    async def scenario() -> None:
        ctx = zmq.asyncio.Context()
        factory = sockets.Sockets(ctx, keys)
        inbox, address = factory.bind_router("127.0.0.1")
        orch = Orchestrator(task_id="x:0", row_id="x", trial=0, seed=1, origin="evil", next_role="filter")
        plain = plain_dealer(ctx, address)
        await plain.send(codec.encode(orch))
        assert await inbox.poll(1500) == 0
        good = factory.connect_dealer(address, "friend")
        await good.send(codec.encode(Heartbeat(peer_id="friend")))
        assert await inbox.poll(5000) != 0
        sender, _ = await inbox.recv_multipart()
        assert sender == b"friend"
        assert await inbox.poll(300) == 0  # the plain frame never arrived
        for s in (inbox, plain, good):
            s.close()
        factory.close()
        ctx.term()

    asyncio.run(scenario())
