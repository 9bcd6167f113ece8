"""An agent peer process: one ZeroMQ inbox, every role of the workflow, one input shard.

Orchestrators go straight from the peer that ran a role to the peer that runs the
next one (or home to the origin); the registry only tells peers where the others are.
The peer is a composition, wired here to the registry and the stats file: ``Origin``
(its shard's tasks and their homecoming), ``Dispatcher`` (where a task goes next),
``Hops`` (the roles run here), ``Inbox`` (what arrives), the spill layer (``runtime.blobs``).

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
from pathlib import Path

import msgspec
import zmq.asyncio

from slurmgen.config import pools
from slurmgen.config.load import load_run_config
from slurmgen.config.types import LLMConf, SlurmgenConf
from slurmgen.config.workflows import get_workflow
from slurmgen.errors import DiskFull
from slurmgen.input import duplicates
from slurmgen.input.dataset import check_path, iter_shard
from slurmgen.llm.footprint import Footprints
from slurmgen.llm.poolset import PoolClients
from slurmgen.llm.pressure import KVPressure
from slurmgen.proc import fdlimit
from slurmgen.proc.diskspace import guarded_write
from slurmgen.proc.faults import fault
from slurmgen.proc.lifecycle import serve_until_signalled, until_stopped
from slurmgen.proc.logs import setup_logging
from slurmgen.proc.metrics import Exporter
from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import Member, Orchestrator
from slurmgen.registry.membership import RegistryClient
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.runtime.blobs import spill_layer
from slurmgen.runtime.dispatch import Dispatcher
from slurmgen.runtime.hops import Hops, role_contexts
from slurmgen.runtime.inbox import Inbox
from slurmgen.runtime.ledger import Ledger
from slurmgen.runtime.origin import Origin, OriginPolicy
from slurmgen.runtime.outbox import Outboxes
from slurmgen.runtime.readiness import refused, wait_ready
from slurmgen.runtime.stats import CrossNode, PeerStats
from slurmgen.toolpool.client import ToolPools
from slurmgen.transport import curve, hosts, sockets

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
        self.router_sock, self.address = self.sockets.bind_router(host)
        self.exporter = Exporter(f"peer-{shard}", run.root, host, kind="peer", enabled=conf.run.metrics,
                                 sd_extra_dir=conf.run.metrics_sd_dir or None)
        self.metrics = self.exporter.peer(self.workflow.roles)
        self.received: collections.Counter[str] = collections.Counter()
        # peers=shards: each pool's rpm / tpm / max_concurrency are per run, this process keeps to its share
        self.llm = PoolClients(conf, peers=shards)
        self.node = hosts.node_of(conf.cluster, "peer", shard)
        self.tools = ToolPools(self.sockets, lambda: self.registry.view.of_kind("toolpool"), self.peer_id,
                               call_timeout_s=conf.toolpool.call_timeout_s, on_lost=conf.toolpool.on_lost,
                               tasks=self.tasks, node=self.node)
        member = Member(peer_id=self.peer_id, kind="peer", address=self.address, node=self.node,
                        roles=tuple(self.workflow.roles), capacity=conf.run.peer_capacity, pid=os.getpid())
        self.registry = RegistryClient(self.ctx, run.registry_address, member, heartbeat_s=conf.run.heartbeat_s,
                                       liveness=conf.run.heartbeat_liveness, on_change=self._on_membership,
                                       on_unknown=lambda: self.dispatch.reset(), tasks=self.tasks)
        self._compose()

    def _compose(self) -> None:
        """The parts that move tasks: outboxes, spill layer, dispatcher, hops, origin, inbox."""
        conf, run = self.conf, self.run
        self.outboxes = Outboxes(self.sockets, self.peer_id, self.node, lambda: self.registry.view.members,
                                 self.tasks, self.received)
        self.spill = spill_layer(conf.spill, run.root, self.node, self.registry.view, self.outboxes.send_msg,
                                 self.received)
        self.dispatch = Dispatcher(self.peer_id, self.node, self.outboxes, self.spill, self.received,
                                   hop_here=lambda orch, sender: self.hops.start(orch, sender),
                                   home_here=self._start_home)
        contexts = role_contexts(self.workflow, self.llm, self.tools, conf.workflow)
        self.hops = Hops(self.peer_id, self.workflow, contexts, str(run.log(f"peer-{self.shard}").relative_to(run.root)),
                         spill=self.spill, dispatch=self.dispatch, registry=self.registry, metrics=self.metrics,
                         tasks=self.tasks)
        self.ledger = Ledger(run.shard(self.shard))
        used = pools.used(conf)
        self.kv_pools = [name for name, pool in used.items() if pool.scheduling_policy == "priority"]
        self.kv = self._kv_gate(used)
        self.origin = Origin(self.peer_id, self.ledger, self.workflow, OriginPolicy.of(conf, self.shards),
                             send=self.dispatch.send, spill=self.spill, release=self._release,
                             settled=self._maybe_mark_done, admit=self.kv.admit if self.kv else None)
        self.inbox = Inbox(self.router_sock, self.received, dispatch=self.dispatch, hops=self.hops,
                           origin=self.origin, spill=self.spill, home=self._start_home)

    def _kv_gate(self, used: dict[str, LLMConf]) -> KVPressure | None:
        """Pools under scheduling_policy=priority: new tasks wait while their replicas report KV pressure
        or (llm.kv_fill > 0) the live tasks' conversations fill their KV (slurmgen.llm.pressure)."""
        if not self.kv_pools:
            return None
        fill = min((used[name].kv_fill for name in self.kv_pools if used[name].kv_fill > 0), default=0.0)
        if not fill:
            return KVPressure([])
        for name in self.kv_pools:
            self.llm.clients[name].record_kv = True
        return KVPressure([], footprints=Footprints(), fill=fill)

    def _release(self, orch: Orchestrator) -> None:
        """The task is written: its tool sessions close, its conversations leave the KV footprint."""
        self.tools.release(orch)
        if self.kv is not None and self.kv.footprints is not None:
            self.kv.footprints.task_ended(orch)

    # -- membership -------------------------------------------------------------------
    def _on_membership(self) -> None:
        view = self.registry.view
        self.dispatch.update(view.of_kind("peer"))
        self.llm.set_members(view.of_kind("llm"))
        if self.kv is not None:
            self.kv.urls = [ep.url for name in self.kv_pools for ep in self.llm.clients[name].endpoints()]
            self.kv.share = 1.0 / max(1, len(view.of_kind("peer")))  # each peer fills its share of the KV
        self.tools.on_membership()
        self.dispatch.pump_all()

    def _start_home(self, orch: Orchestrator) -> None:
        self.tasks.spawn(self.origin.come_home(orch), kind="coming home", task_id=orch.task_id,
                         on_error=lambda exc: self.origin.home_failed(orch, exc))

    # -- the shard's end and the stats ------------------------------------------------
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

    def _stats(self) -> PeerStats:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        origin, held = self.origin, self.dispatch.held
        return PeerStats(
            peer_id=self.peer_id, shard=self.shard, received=dict(self.received),
            cpu_s=usage.ru_utime + usage.ru_stime, llm=self.llm.stats(), llm_limiter=self.llm.limiter_stats(),
            in_flight=len(origin.leases), held=len(held), llm_outstanding=self.llm.outstanding(),
            issued=origin.issued, reissued=origin.reissued, retried=origin.retried, written=origin.written,
            duplicates=origin.duplicates, refused_frames=self.inbox.refused,
            tools={**self.tools.counts, "waiting": self.tools.waiting},
            oldest_in_flight=list(itertools.islice(origin.leases, 8)),  # issue order
            held_ids=list(itertools.islice(held, 8)), task_failures=self.tasks.failures,
            spill=self.spill.stats(), cross_node=self._cross_node(),
            kv_admission=self.kv.stats() if self.kv is not None else None)

    def _cross_node(self) -> CrossNode:
        """What this peer moved over the network to or from other nodes."""
        meter = self.outboxes.cross_node
        return CrossNode(bytes_sent=meter.bytes, frames_sent=meter.frames, spill_bytes_fetched=self.spill.fetched_bytes,
                         spill_fetches=self.spill.fetches, tool_bytes=self.tools.remote_bytes)

    def _write_stats(self) -> None:
        """Per incarnation, so a killed peer's last counts survive its restart."""
        stats = self._stats()
        path = self.run.stats(f"peer-{self.peer_id}")
        guarded_write(path, lambda: write_atomic(path, msgspec.json.encode(stats)))
        self.metrics.sync(msgspec.to_builtins(stats))

    async def _leases(self) -> None:
        """Renew the leases of the tasks held here; re-issue own tasks whose lease ran out."""
        while True:
            await asyncio.sleep(self.conf.run.lease_renew_s)
            fault("leases")
            self.dispatch.hold(self.origin.renew)
            self.origin.expire()
            self._write_stats()

    # -- lifecycle --------------------------------------------------------------------
    async def serve(self, stop: asyncio.Event) -> None:
        await until_stopped(stop, self.registry.start(self.conf.run.startup_timeout_s))
        if stop.is_set():
            return
        receiver = self.tasks.loop(self.inbox.receive(), kind="receiver")
        leases = self.tasks.loop(self._leases(), kind="leases")
        if self.kv is not None:
            self.tasks.loop(self.kv.run(), kind="kv pressure")
        await wait_ready(self.registry, self.workflow, self.conf, stop)
        if await refused(self.llm, self.conf, self.run):
            await stop.wait()  # nothing issued: the driver reads RUN/state/refused and stops the run
            receiver.cancel()
            leases.cancel()
            return
        rows = iter_shard(check_path(self.conf.dataset.path), self.conf.dataset.limit, self.shard,
                          self.shards, self.workflow.row, self.conf.dataset.max_row_bytes,
                          duplicates.load(self.run.state))
        source = self.tasks.loop(self.origin.issue_all(rows), kind="source", may_return=True)
        source.add_done_callback(self._source_ended)
        await stop.wait()
        self.origin.stop_issuing()
        if self.tasks.fatal is None:  # a failed loop of this process: nothing to drain with
            await self._drain()
        for task in (source, receiver, leases):
            task.cancel()

    async def _drain(self) -> None:
        """Let tasks in flight finish for up to run.drain_s; unfinished ones resume next time."""
        deadline = time.monotonic() + self.conf.run.drain_s
        while (self.origin.leases or self.dispatch.held) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        log.info("stopping: %d own tasks unfinished and %d failed while stopping (a restart resumes "
                 "both), %d held for others", len(self.origin.leases), self.origin.left, len(self.dispatch.held))

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
        self.outboxes.close()
        self.router_sock.close()
        self.sockets.close()
        self.spill.close()
        self.ctx.term()


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
