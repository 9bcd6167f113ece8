"""A tool-pool member: hosts environment sessions and serves them over ZeroMQ.

    python -m slurmgen.toolpool.server --run-dir RUN --name pool-0

It reads the run's config (``toolpool.*`` and the workflow's ``toolpool_factory``),
binds a CurveZMQ ROUTER, registers as kind ``"toolpool"`` with ``toolpool.capacity``,
and answers ``SessionOpen`` / ``SessionCall`` / ``SessionClose``. Session work (a
factory or a method, blocking Python) runs on one worker thread, so the event loop
keeps heartbeating and receiving while an environment computes. Sessions unused for
``toolpool.idle_s`` are dropped. SIGTERM: unregister, close every session, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from slurmgen.config.load import load_run_config
from slurmgen.proc.faults import fault
from slurmgen.proc.lifecycle import serve_until_signalled, until_stopped
from slurmgen.proc.logs import setup_logging
from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import Member, SessionCall, SessionClose, SessionOpen, SessionReply
from slurmgen.registry.membership import RegistryClient
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.toolpool.session import PoolFull, SessionHost, UnknownSession, pool_factory
from slurmgen.transport import codec, curve, hosts, sockets

log = logging.getLogger("slurmgen.toolpool")

SWEEP_S = 10.0
STATS_S = 1.0


class PoolServer:
    def __init__(self, run: RunDir, name: str) -> None:
        self.run = run
        self.conf = load_run_config(run.config)
        factory = pool_factory(self.conf)
        if factory is None:
            raise SystemExit(f"{name}: no session factory (set toolpool.factory or the workflow's toolpool_factory)")
        tp = self.conf.toolpool
        self.host = SessionHost(factory, tp.capacity, tp.idle_s)
        self.member_id = f"{name}.{uuid.uuid4().hex[:6]}"
        self.tasks = TaskSet(self.member_id)  # requests, session closes, own loops, registry client
        self.ctx = zmq.asyncio.Context()
        self.sockets = sockets.Sockets(self.ctx, curve.load_if_present(run.root))
        bind = hosts.default_host(self.conf.cluster.kind, self.conf.cluster.host, self.conf.cluster.interface)
        self.router, self.address = self.sockets.bind_router(bind)
        member = Member(peer_id=self.member_id, kind="toolpool", address=self.address, node=hosts.node_name(),
                        capacity=tp.capacity, pid=os.getpid())
        self.registry = RegistryClient(self.ctx, run.registry_address, member, heartbeat_s=self.conf.run.heartbeat_s,
                                       liveness=self.conf.run.heartbeat_liveness, tasks=self.tasks)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session")
        self.decoder = codec.tool_request_decoder()
        self.received: collections.Counter[str] = collections.Counter()

    async def _work(self, identity: bytes, msg: SessionOpen | SessionCall) -> None:
        loop = asyncio.get_running_loop()
        fault("pool-work")
        try:
            if isinstance(msg, SessionOpen):
                spec = msgspec.json.decode(msg.spec)
                await loop.run_in_executor(self.worker, self.host.open, msg.session, spec)
                reply = SessionReply(request_id=msg.request_id)
            else:
                args = msgspec.json.decode(msg.args)
                result = await loop.run_in_executor(self.worker, self.host.call, msg.session, msg.method, args)
                reply = SessionReply(request_id=msg.request_id, result=msgspec.Raw(msgspec.json.encode(result)))
        except UnknownSession:
            reply = SessionReply(request_id=msg.request_id, error=f"no session {msg.session}", kind="unknown")
        except PoolFull as exc:
            reply = SessionReply(request_id=msg.request_id, error=str(exc), kind="full")
        except Exception as exc:  # a session's bug fails its task, not the member
            log.exception("session %s: %s failed", msg.session, type(msg).__name__)
            reply = SessionReply(request_id=msg.request_id, error=f"{type(exc).__name__}: {exc}", kind="error")
        self.registry.load = len(self.host)
        await self.router.send_multipart([identity, codec.encode(reply)])

    async def _receive(self) -> None:
        while True:
            frames = await self.router.recv_multipart()
            if len(frames) != 2:
                self.received["malformed"] += 1
                continue
            msg = self.decoder.decode(frames[1])
            match msg:
                case SessionOpen() | SessionCall():
                    self.received[type(msg).__name__] += 1
                    self._start_work(frames[0], msg)
                case SessionClose(session=sid):
                    self.received["SessionClose"] += 1
                    # behind any call still queued on the worker, so it never races one
                    self.tasks.spawn(asyncio.get_running_loop().run_in_executor(self.worker, self.host.close, sid),
                                     kind=f"closing session {sid}")
                case None:
                    self.received["malformed"] += 1

    def _start_work(self, identity: bytes, msg: SessionOpen | SessionCall) -> None:
        def failed(exc: BaseException) -> None:  # answer anyway: the caller must not wait call_timeout_s
            reply = SessionReply(request_id=msg.request_id, error=f"{type(exc).__name__}: {exc}", kind="error")
            self.tasks.spawn(self.router.send_multipart([identity, codec.encode(reply)]), kind="error reply")

        self.tasks.spawn(self._work(identity, msg), kind=f"session {msg.session} request", on_error=failed)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            dropped = await loop.run_in_executor(self.worker, self.host.sweep)
            if dropped:
                log.warning("dropped %d idle sessions (unused for %.0f s)", len(dropped), self.host.idle_s)
            self.registry.load = len(self.host)

    async def _stats_loop(self) -> None:
        """Stats while running: a sandboxed member may be killed before ``close`` writes them."""
        last: dict[str, Any] = {}
        while True:
            await asyncio.sleep(STATS_S)
            fault("pool-loop")
            now = self.stats()
            if now != last:
                self._write_stats(now)
                last = now

    def stats(self) -> dict[str, Any]:
        h = self.host
        return {"member_id": self.member_id, "received": dict(self.received), "open": len(h), "opened": h.opened,
                "closed": h.closed, "calls": h.calls, "dropped_idle": h.dropped_idle, "superseded": h.superseded}

    def _write_stats(self, stats: dict[str, Any] | None = None) -> None:
        write_atomic(self.run.stats(f"toolpool-{self.member_id}"), msgspec.json.encode(stats or self.stats()))

    async def serve(self, stop: asyncio.Event) -> None:
        await until_stopped(stop, self.registry.start(self.conf.run.startup_timeout_s))
        if stop.is_set():
            return
        log.info("%s serving at %s (capacity %d)", self.member_id, self.address, self.host.capacity)
        loops = {"receive": self._receive(), "sweep": self._sweep(), "stats_loop": self._stats_loop()}
        tasks = [self.tasks.loop(c, kind=kind) for kind, c in loops.items()]
        await stop.wait()
        for t in tasks:
            t.cancel()

    async def close(self) -> None:
        await self.tasks.cancel_all()
        self._write_stats()
        await self.registry.close()
        self.worker.submit(self.host.close_all).result()
        self.worker.shutdown()
        self.router.close()
        self.sockets.close()
        self.ctx.term()


async def amain(args: argparse.Namespace) -> None:
    server = PoolServer(RunDir(Path(args.run_dir)), args.name)
    await serve_until_signalled(server.serve, server.close, server.tasks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slurmgen.toolpool.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--name", required=True, help="member name (pool-<i>); a random suffix makes its id")
    args = parser.parse_args(argv)
    setup_logging(RunDir(Path(args.run_dir)).make().log(args.name))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
