"""The registry process: a directory of peers and services, never on the data path.

ROUTER: Register -> Welcome | Refused; Heartbeat -> (nothing) | Refused when unknown;
Unregister; Lookup -> Table; Stats -> StatsReply. PUB: the Table, on every change and
every few seconds. Its addresses are written atomically to ``<run>/registry.json``.

    python -m slurmgen.registry.server --run-dir RUN [--host H]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import signal
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio

from slurmgen.proc import fdlimit
from slurmgen.proc.faults import fault
from slurmgen.proc.logs import setup_logging
from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import (
    PROTOCOL_VERSION,
    Heartbeat,
    Lookup,
    Refused,
    Register,
    Stats,
    StatsReply,
    Unregister,
    Welcome,
)
from slurmgen.registry.peertable import PeerTable
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.transport import codec, curve, hosts, sockets

log = logging.getLogger("slurmgen.registry")

REPUBLISH_S = 2.0


class RegistryAddress(msgspec.Struct, kw_only=True):
    router: str
    pub: str
    pid: int
    protocol: int = PROTOCOL_VERSION


class Registry:
    def __init__(self, run: RunDir, host: str, heartbeat_s: float, liveness: int) -> None:
        self.run = run
        self.ctx = zmq.asyncio.Context()
        self.sockets = sockets.Sockets(self.ctx, curve.load_if_present(run.root))
        self.router, router_addr = self.sockets.bind_router(host)
        self.pub, pub_addr = self.sockets.bind_pub(host)
        self.address = RegistryAddress(router=router_addr, pub=pub_addr, pid=os.getpid())
        self.table = PeerTable(heartbeat_s=heartbeat_s, liveness=liveness)
        self.decoder = codec.registry_request_decoder()
        self.received: collections.Counter[str] = collections.Counter()
        self.tasks = TaskSet("registry")  # the expiry ticker: if it fails, the registry exits 1 (restarted)

    def publish_address(self) -> None:
        write_atomic(self.run.registry_address, msgspec.json.encode(self.address))

    async def serve(self, stop: asyncio.Event) -> None:
        self.tasks.on_fatal = lambda exc: stop.set()
        ticker = self.tasks.loop(self._tick(stop), kind="expiry", may_return=True)
        try:
            while not stop.is_set():
                if await self.router.poll(200) == 0:
                    continue
                ident, body = (await self.router.recv_multipart())[-2:]
                await self._handle(ident, body)
        finally:
            ticker.cancel()
            self.close()

    async def _handle(self, ident: bytes, body: bytes) -> None:
        msg = self.decoder.decode(body)
        self.received[type(msg).__name__ if msg is not None else "malformed"] += 1
        match msg:
            case Register(member=member, protocol=proto) if proto != PROTOCOL_VERSION:
                why = (f"protocol version {proto} refused: this registry speaks version {PROTOCOL_VERSION}; "
                       "install the same slurmgen version everywhere")
                log.warning("refused %s: %s", member.peer_id, why)
                await self._reply(ident, Refused(reason=why))
            case Register(member=member):
                self.table.register(member)
                log.info("registered %s (%s) at %s on %s", member.peer_id, member.kind, member.address,
                         member.node or "?")
                await self._reply(ident, Welcome(heartbeat_s=self.table.heartbeat_s, table=self.table.table()))
                await self._publish()
            case Heartbeat(peer_id=peer_id):
                if not self.table.heartbeat(peer_id):
                    await self._reply(ident, Refused(reason="unknown peer: register again"))
            case Unregister(peer_id=peer_id):
                if self.table.remove(peer_id):
                    log.info("unregistered %s", peer_id)
                    await self._publish()
            case Lookup():
                await self._reply(ident, self.table.table())
            case Stats():
                await self._reply(ident, StatsReply(received=dict(self.received)))

    async def _reply(self, ident: bytes, msg: msgspec.Struct) -> None:
        await self.router.send_multipart([ident, codec.encode(msg)])

    async def _publish(self) -> None:
        await self.pub.send(codec.encode(self.table.table()))

    async def _tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(min(REPUBLISH_S, self.table.heartbeat_s))
            fault("registry-tick")
            for gone in self.table.expire():
                log.warning("expired %s: missed %d heartbeats", gone, self.table.liveness)
            await self._publish()

    def write_stats(self) -> None:
        write_atomic(self.run.stats("registry"), msgspec.json.encode({"received": dict(self.received)}))

    def close(self) -> None:
        self.write_stats()
        self.router.close()
        self.pub.close()
        self.sockets.close()
        self.ctx.term()


async def amain(args: argparse.Namespace) -> None:
    run = RunDir(Path(args.run_dir)).make()
    host = hosts.default_host("slurm" if args.host == "auto" else "local", args.host)
    registry = Registry(run, host, args.heartbeat_s, args.liveness)
    registry.publish_address()
    log.info("registry at %s (pub %s)", registry.address.router, registry.address.pub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await registry.serve(stop)
    if registry.tasks.fatal is not None:
        raise SystemExit(f"registry stopped: {registry.tasks.fatal!r} (see its log)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slurmgen.registry.server", description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--heartbeat-s", type=float, default=1.0)
    parser.add_argument("--liveness", type=int, default=5)
    args = parser.parse_args(argv)
    setup_logging(RunDir(Path(args.run_dir)).make().log("registry"))
    fdlimit.raise_nofile()  # a ZeroMQ connection per member
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
