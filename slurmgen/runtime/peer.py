"""An agent peer process: one ZeroMQ inbox, every role of the workflow, one input shard.

Orchestrators go straight from the peer that ran a role to the peer that runs the
next one (or home to the origin); the registry only tells peers where the others are.

    python -m slurmgen.runtime.peer --run-dir RUN --shard I --shards N
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import logging
import os
import resource
import time
import uuid
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from slurmgen.config import pools
from slurmgen.config.load import load_run_config
from slurmgen.config.types import SlurmgenConf
from slurmgen.config.workflows import get_workflow
from slurmgen.errors import DiskFull
from slurmgen.input import duplicates
from slurmgen.input.dataset import BadRow, GoodRow, check_path, iter_shard
from slurmgen.llm import limits
from slurmgen.llm.poolset import PoolClients
from slurmgen.llm.pressure import KVPressure
from slurmgen.proc import fdlimit
from slurmgen.proc.diskspace import guarded_write
from slurmgen.proc.faults import fault
from slurmgen.proc.lifecycle import serve_until_signalled, until_stopped
from slurmgen.proc.logs import setup_logging
from slurmgen.proc.metrics import Exporter
from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import (
    Blobs,
    Credit,
    Failure,
    FetchBlobs,
    FreeBlobs,
    Hold,
    Member,
    Orchestrator,
)
from slurmgen.registry.membership import RegistryClient
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.runtime.blobs import BlobService
from slurmgen.runtime.ledger import Ledger
from slurmgen.runtime.origin import Origin, OriginPolicy
from slurmgen.runtime.outbox import Meter, Outbox, drain
from slurmgen.runtime.readiness import wait_ready
from slurmgen.runtime.router import CreditRouter
from slurmgen.runtime.worker import run_role
from slurmgen.spill.policy import Spiller, SpillLost
from slurmgen.toolpool.client import ToolPools
from slurmgen.transport import codec, curve, hosts, sockets
from slurmgen.workflow import RoleContext, fail

log = logging.getLogger("slurmgen.peer")


class Peer:
    def __init__(self, conf: SlurmgenConf, run: RunDir, shard: int, shards: int) -> None:
        self.conf, self.run, self.shard, self.shards = conf, run, shard, shards
        self.peer_id = f"peer-{shard}.{uuid.uuid4().hex[:6]}"
        # owns every background coroutine: hops, tasks coming home, queued sends, own loops
        self.tasks = TaskSet(self.peer_id)
        self.workflow = get_workflow(conf.workflow.name)
        if self.workflow.warm is not None:
            self.workflow.warm()  # e.g. import a heavy library before the first task
        self.ctx = zmq.asyncio.Context()
        self.sockets = sockets.Sockets(self.ctx, curve.load_if_present(run.root))
        host = hosts.default_host(conf.cluster.kind, conf.cluster.host, conf.cluster.interface)
        self.inbox, self.address = self.sockets.bind_router(host)
        self.exporter = Exporter(f"peer-{shard}", run.root, host, kind="peer", enabled=conf.run.metrics,
                                 sd_extra_dir=conf.run.metrics_sd_dir or None)
        self.metrics = self.exporter.peer(self.workflow.roles)
        self.router = CreditRouter()
        self.pending: dict[str, deque[Orchestrator]] = collections.defaultdict(deque)
        self.outboxes: dict[str, Outbox] = {}
        self.cross_node = Meter()  # every frame sent to a peer on another node
        self.decoder = codec.peer_decoder()
        self.received: collections.Counter[str] = collections.Counter()
        # peers=shards: each pool's rpm / tpm / max_concurrency are per run, this process keeps to its share
        self.llm = PoolClients(conf, peers=shards)
        self.node = node_of(conf, shard)
        self.tools = ToolPools(self.sockets, lambda: self.registry.view.of_kind("toolpool"), self.peer_id,
                               call_timeout_s=conf.toolpool.call_timeout_s, on_lost=conf.toolpool.on_lost,
                               tasks=self.tasks, node=self.node)
        role_log = logging.getLogger("slurmgen.role")
        self.role_ctx = {role: RoleContext(llm=self.llm.for_role(role), conf=conf.workflow, log=role_log,
                                           tools=self.tools) for role in self.workflow.roles}
        self.log_file = str(run.log(f"peer-{shard}").relative_to(run.root))
        member = Member(peer_id=self.peer_id, kind="peer", address=self.address, node=self.node,
                        roles=tuple(self.workflow.roles), capacity=conf.run.peer_capacity, pid=os.getpid())
        self.registry = RegistryClient(self.ctx, run.registry_address, member, heartbeat_s=conf.run.heartbeat_s,
                                       liveness=conf.run.heartbeat_liveness, on_change=self._on_membership,
                                       on_unknown=self._on_unknown, tasks=self.tasks)
        self.ledger = Ledger(run.shard(shard))
        # pools under scheduling_policy=priority: new tasks wait while their replicas report KV pressure
        self.kv_pools = [name for name, pool in pools.used(conf).items() if pool.scheduling_policy == "priority"]
        self.kv = KVPressure([]) if self.kv_pools else None
        self.origin = Origin(self.peer_id, self.ledger, self.workflow, origin_policy(conf, shards), send=self.send,
                             admit=self.kv.admit if self.kv else None)
        self.held: dict[str, Orchestrator] = {}  # tasks this peer is responsible for right now
        self.blobs = (BlobService(conf.spill, run.root, self.node, self.registry.view, self._send_to)
                      if conf.spill.enabled else None)

    # -- membership -------------------------------------------------------------------
    def _on_membership(self) -> None:
        view = self.registry.view
        peers = view.of_kind("peer")
        self.router.update(peers)
        live = {m.peer_id for m in peers}
        for pid in [p for p in self.outboxes if p not in live]:
            self.outboxes.pop(pid).close()
            self.router.forget(pid)
        self.llm.set_members(view.of_kind("llm"))
        if self.kv is not None:
            self.kv.urls = [ep.url for name in self.kv_pools for ep in self.llm.clients[name].endpoints()]
        self.tools.on_membership()
        for role in list(self.pending):
            self._pump(role)

    def _on_unknown(self) -> None:
        """The registry did not know this peer: it was cut off long enough to be expired (or the
        registry restarted). The others forgot it, with the credits they owed it: start over."""
        log.warning("the registry did not know %s (cut off, or the registry restarted): its credits with "
                    "every peer start over", self.peer_id)
        self.router.reset()
        self._pump_all()

    def _outbox(self, peer_id: str) -> Outbox | None:
        box = self.outboxes.get(peer_id)
        if box is None:
            member = self.registry.view.members.get(peer_id)
            if member is None:
                return None
            box = self.outboxes[peer_id] = Outbox(self.sockets.connect_dealer(member.address, self.peer_id),
                                                  self.tasks, self.cross_node if member.node != self.node else None)
        return box

    # -- sending ----------------------------------------------------------------------
    def send(self, orch: Orchestrator) -> None:
        """Route a task: home if done, else to a peer hosting its next role."""
        if not orch.next_role:
            self._send_home(orch)
            return
        self.held[orch.task_id] = orch
        self.pending[orch.next_role].append(orch)
        self._pump(orch.next_role)

    def _pump(self, role: str) -> None:
        queue = self.pending[role]
        while queue:
            dest = self.router.pick(role, self.node)
            if dest is None:
                return
            self._deliver(dest, queue.popleft())

    def _deliver(self, dest: str, orch: Orchestrator) -> None:
        if dest == self.peer_id:
            self.received["orch_local"] += 1
            self._start_hop(orch, sender=self.peer_id)
            return
        sock = self._outbox(dest)
        if sock is None:  # gone since picked: try again elsewhere
            self.router.forget(dest)
            self.send(orch)
            return
        self.held.pop(orch.task_id, None)
        self._send_orch(sock, orch)

    def _send_orch(self, sock: Outbox, orch: Orchestrator) -> None:
        if self.blobs is not None:
            Spiller.strip(orch)
        frame = codec.encode(orch)
        self.received["bytes_orch_sent"] += len(frame)
        sock.send(frame)

    def _send_to(self, peer_id: str, msg: msgspec.Struct) -> bool:
        sock = self._outbox(peer_id)
        if sock is None:
            return False
        frame = codec.encode(msg)
        self.received[f"bytes_{type(msg).__name__}_sent"] += len(frame)
        sock.send(frame)
        return True

    def _send_home(self, orch: Orchestrator) -> None:
        self.held.pop(orch.task_id, None)
        if orch.origin == self.peer_id:
            self._start_home(orch)
            return
        sock = self._outbox(orch.origin)
        if sock is None:
            log.warning("task=%s origin %s is gone; dropping (its lease re-issues it)", orch.task_id, orch.origin)
            return
        self._send_orch(sock, orch)

    async def _come_home(self, orch: Orchestrator) -> None:
        """At the origin: bring spilled parts back for the record, write it, then free them."""
        refs: dict[str, list[str]] = {}
        if self.blobs is not None:
            try:
                await self.blobs.spiller.fill(orch)
            except SpillLost as exc:
                fail(orch, Failure.LOST, f"{exc}")
            refs = self.blobs.spiller.refs_by_node(orch)
            Spiller.clear_refs(orch)
        fault("home")
        self.tools.release(orch)  # written, issued again or a late duplicate: its sessions are done
        self.origin.complete(orch)
        if self.blobs is not None and refs:  # after the write: a failed free can leak payloads, never a task
            fault("free")
            self.blobs.free(refs)
        self._maybe_mark_done()

    def _home_failed(self, orch: Orchestrator, exc: BaseException) -> None:
        """_come_home raised: a task not written yet is written (or re-issued) all the same."""
        if isinstance(exc, DiskFull):
            raise exc  # the process stops; the resume writes it
        if orch.task_id in self.origin.leases:
            Spiller.clear_refs(orch)
            fail(orch, Failure.LOST, f"coming home on {self.peer_id} failed: {type(exc).__name__}: {exc}")
            self.origin.complete(orch)  # "lost" is retried from its row while run.max_attempts allow
        self._maybe_mark_done()

    def _give_credit(self, sender: str) -> None:
        if sender == self.peer_id:
            self.router.credit(sender)
            self._pump_all()
            return
        sock = self._outbox(sender)
        if sock is not None:
            sock.send(codec.encode(Credit(n=1)))

    def _pump_all(self) -> None:
        for role in list(self.pending):
            self._pump(role)

    # -- receiving and working --------------------------------------------------------
    def _start_hop(self, orch: Orchestrator, sender: str) -> None:
        self.tasks.spawn(self._work(orch, sender), kind="hop", task_id=orch.task_id,
                         on_error=lambda exc: self._hop_failed(orch, exc))

    def _start_home(self, orch: Orchestrator) -> None:
        self.tasks.spawn(self._come_home(orch), kind="coming home", task_id=orch.task_id,
                         on_error=lambda exc: self._home_failed(orch, exc))

    def _hop_failed(self, orch: Orchestrator, exc: BaseException) -> None:
        """The runtime (not the role: run_role catches those) failed on a hop: the task goes home
        failed as ``lost``, which its origin issues again from the row."""
        if isinstance(exc, DiskFull):
            raise exc
        if self.held.get(orch.task_id) is not orch or orch in self.pending.get(orch.next_role, ()):
            return  # it was passed on before the failure: not this hop's to fail
        fail(orch, Failure.LOST, f"hop on {self.peer_id} failed: {type(exc).__name__}: {exc}")
        orch.next_role = ""
        self.send(orch)

    async def _work(self, orch: Orchestrator, sender: str) -> None:
        self.registry.load += 1
        mark = self.metrics.role_start(orch)
        try:
            fault("hop")
            if self.blobs is None:
                await run_role(self.workflow, self._ctx(orch), orch, self.log_file)
            else:
                await self._work_spilled(orch, self.blobs)
        finally:
            self.registry.load -= 1
            self._give_credit(sender)
        self.metrics.role_end(mark, orch)
        self.send(orch)

    def _ctx(self, orch: Orchestrator) -> RoleContext[Any] | None:
        """The role's context (its LLM pool); None for a role the workflow lacks (run_role fails the task)."""
        return self.role_ctx.get(orch.next_role)

    async def _work_spilled(self, orch: Orchestrator, blobs: BlobService) -> None:
        try:
            await blobs.spiller.fill(orch)
        except SpillLost as exc:  # the payload's node died: the task starts again from its row
            fail(orch, Failure.LOST, f"{exc}")
            orch.next_role = ""
            return
        await run_role(self.workflow, self._ctx(orch), orch, self.log_file)
        blobs.spiller.spill(orch)

    async def _receive(self) -> None:
        await drain(self.inbox, self._on_frames)

    def _on_frames(self, frames: list[bytes]) -> None:
        fault("receiver")
        if len(frames) != 2:
            self.received["malformed"] += 1
            return
        sender = frames[0].decode(errors="replace")
        msg = self.decoder.decode(frames[1])
        match msg:
            case Orchestrator() if not msg.next_role:
                self.received["orch_home"] += 1
                self._start_home(msg)
            case Orchestrator():
                self.received["orch"] += 1
                self.held[msg.task_id] = msg
                self._start_hop(msg, sender)
            case Hold(task_ids=task_ids):
                self.received["hold"] += 1
                self.origin.renew(task_ids)
            case FetchBlobs() | Blobs() | FreeBlobs():
                self._on_blobs_message(sender, msg)
            case Credit(n=n):
                self.received["credit"] += 1
                self.router.credit(sender, n)
                self._pump_all()
            case None:
                self.received["malformed"] += 1

    def _on_blobs_message(self, sender: str, msg: FetchBlobs | Blobs | FreeBlobs) -> None:
        blobs = self.blobs
        if blobs is None:
            self.received["blobs_without_spill"] += 1
            return
        match msg:
            case FetchBlobs():
                self.received["fetch"] += 1
                blobs.on_fetch(sender, msg)
            case Blobs():
                blobs.on_blobs(msg)
            case FreeBlobs():
                blobs.on_free(msg)

    def _maybe_mark_done(self) -> None:
        done = self.run.shard_done(self.shard)
        if self.origin.finished and not done.exists():
            self.ledger.sync()
            guarded_write(done, lambda: write_atomic(done, msgspec.json.encode(self._stats())))
            log.info("shard %d done: %d written", self.shard, self.origin.written)

    def _source_ended(self, source: asyncio.Future[None]) -> None:
        if source.cancelled() or source.exception() is not None:
            return  # the source loop's owner has it
        try:
            self._maybe_mark_done()
        except Exception as exc:  # noqa: BLE001 - a done-callback: the task set reports it
            self.tasks.fail("marking the shard done", exc)

    def _stats(self) -> dict[str, object]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"peer_id": self.peer_id, "shard": self.shard, "received": dict(self.received),
                "cpu_s": usage.ru_utime + usage.ru_stime, "llm": {u: msgspec.to_builtins(s) for u, s in self.llm.stats().items()},
                "llm_limiter": msgspec.to_builtins(self.llm.limiter_stats()),
                "in_flight": len(self.origin.leases), "held": len(self.held),
                "llm_outstanding": self.llm.outstanding(), "issued": self.origin.issued,
                "reissued": self.origin.reissued, "retried": self.origin.retried,
                "written": self.origin.written, "duplicates": self.origin.duplicates,
                "refused_frames": self.decoder.refused, "tools": {**self.tools.counts, "waiting": self.tools.waiting},
                "oldest_in_flight": list(itertools.islice(self.origin.leases, 8)),  # issue order
                "held_ids": list(itertools.islice(self.held, 8)), "task_failures": self.tasks.failures,
                "spill": self.blobs.store.stats() if self.blobs is not None else {},
                "cross_node": self._cross_node()}

    def _cross_node(self) -> dict[str, int]:
        """What this peer moved over the network to or from other nodes (slurmgen.run.summary.CrossNode)."""
        spiller = self.blobs.spiller if self.blobs is not None else None
        return {"bytes_sent": self.cross_node.bytes, "frames_sent": self.cross_node.frames,
                "spill_bytes_fetched": spiller.fetched_bytes if spiller is not None else 0,
                "spill_fetches": spiller.fetches if spiller is not None else 0,
                "tool_bytes": self.tools.remote_bytes}

    # -- leases -----------------------------------------------------------------------
    async def _leases(self) -> None:
        """Renew the leases of the tasks held here; re-issue own tasks whose lease ran out."""
        while True:
            await asyncio.sleep(self.conf.run.lease_renew_s)
            fault("leases")
            by_origin: dict[str, list[str]] = collections.defaultdict(list)
            for orch in self.held.values():
                by_origin[orch.origin].append(orch.task_id)
            for origin, ids in by_origin.items():
                if origin == self.peer_id:
                    self.origin.renew(ids)
                elif (sock := self._outbox(origin)) is not None:
                    sock.send(codec.encode(Hold(task_ids=ids)))
            self.origin.expire()
            self._write_stats()

    def _write_stats(self) -> None:
        """Per incarnation, so a killed peer's last counts survive its restart."""
        stats = self._stats()
        path = self.run.stats(f"peer-{self.peer_id}")
        guarded_write(path, lambda: write_atomic(path, msgspec.json.encode(stats)))
        self.metrics.sync(stats)

    # -- lifecycle --------------------------------------------------------------------
    async def serve(self, stop: asyncio.Event) -> None:
        await until_stopped(stop, self.registry.start(self.conf.run.startup_timeout_s))
        if stop.is_set():
            return
        receiver = self.tasks.loop(self._receive(), kind="receiver")
        leases = self.tasks.loop(self._leases(), kind="leases")
        if self.kv is not None:
            self.tasks.loop(self.kv.run(), kind="kv pressure")
        await wait_ready(self.registry, self.workflow, self.conf, stop)
        if await self._refused():
            await stop.wait()  # nothing issued: the driver reads RUN/state/refused and stops the run
            receiver.cancel()
            leases.cancel()
            return
        rows = iter_shard(check_path(self.conf.dataset.path), self.conf.dataset.limit, self.shard,
                          self.shards, self.workflow.row, self.conf.dataset.max_row_bytes,
                          duplicates.load(self.run.state))
        source = self.tasks.loop(self._issue(rows), kind="source", may_return=True)
        source.add_done_callback(self._source_ended)
        await stop.wait()
        self.origin.stop_issuing()
        if self.tasks.fatal is None:  # a failed loop of this process: nothing to drain with
            await self._drain()
        for task in (source, receiver, leases):
            task.cancel()

    async def _refused(self) -> bool:
        """A max_tokens that no replica's max_model_len allows: say so in RUN/state/refused."""
        endpoints = [ep for client in self.llm.clients.values() for ep in client.endpoints()]
        bad = limits.problems(limits.max_tokens_fields(self.conf.workflow), await limits.lengths(endpoints))
        if bad:
            log.error("refusing to issue tasks: %s", "; ".join(bad))
            write_atomic(self.run.refused, "\n".join(bad).encode())
        return bool(bad)

    async def _issue(self, rows: Iterable[GoodRow | BadRow]) -> None:
        fault("source")
        await self.origin.issue_all(rows)

    async def _drain(self) -> None:
        """Let tasks in flight finish for up to run.drain_s; unfinished ones resume next time."""
        deadline = time.monotonic() + self.conf.run.drain_s
        while (self.origin.leases or self.held) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        log.info("stopping: %d own tasks unfinished and %d failed while stopping (a restart resumes "
                 "both), %d held for others", len(self.origin.leases), self.origin.left, len(self.held))

    async def close(self) -> None:
        await self.tasks.cancel_all()  # nothing may use a socket once they are closed
        self.ledger.close()
        try:
            self._write_stats()
        except DiskFull as exc:
            log.error("%s", exc)
        self.exporter.close()
        await self.registry.close()
        await self.llm.close()
        self.tools.close()
        for box in self.outboxes.values():
            box.close()
        self.inbox.close()
        self.sockets.close()
        if self.blobs is not None:
            self.blobs.close()
        self.ctx.term()


def node_of(conf: SlurmgenConf, shard: int) -> str:
    node = hosts.pretend_node(conf.cluster, "peer", shard)
    return hosts.node_name() if node is None else f"node-{node}"


def origin_policy(conf: SlurmgenConf, shards: int) -> OriginPolicy:
    return OriginPolicy(trials=conf.run.trials, max_in_flight=max(1, -(-conf.run.max_in_flight // shards)),
                        run_seed=conf.run.seed, lease_s=conf.run.lease_s, max_attempts=conf.run.max_attempts,
                        retry_on=tuple(map(Failure, conf.run.retry_on)), max_engine_deaths=conf.run.max_engine_deaths)


async def amain(args: argparse.Namespace) -> None:
    run = RunDir(Path(args.run_dir))
    peer = Peer(load_run_config(run.config), run, args.shard, args.shards)
    await serve_until_signalled(peer.serve, peer.close, peer.tasks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slurmgen.runtime.peer", description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--shards", type=int, required=True)
    args = parser.parse_args(argv)
    setup_logging(RunDir(Path(args.run_dir)).make().log(f"peer-{args.shard}"))
    fdlimit.raise_nofile()  # a socket per LLM request in flight
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
