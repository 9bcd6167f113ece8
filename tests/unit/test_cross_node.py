"""Bytes that cross the network between nodes: counted where they are sent (an outbox to a
peer on another node, a fetch of another node's spilled payloads), summed over the peers'
stats files into summary.json and shown by ``slurmgen status``."""

import asyncio
import json

import msgspec
import zmq
import zmq.asyncio

from slurmgen.protocol import Orchestrator, SpillRef
from slurmgen.run.status import collect, render
from slurmgen.run.summary import CrossNode, Summary, cross_node
from slurmgen.rundir import RunDir
from slurmgen.runtime.outbox import Meter, Outbox
from slurmgen.spill.policy import Spiller
from slurmgen.spill.store import BlobStore


def test_an_outbox_with_a_meter_counts_every_frame_it_sends():
    ctx = zmq.asyncio.Context()
    server = ctx.socket(zmq.PULL)
    server.bind("inproc://meter")
    meter = Meter()
    metered, plain = Outbox(ctx.socket(zmq.PUSH), meter=meter), Outbox(ctx.socket(zmq.PUSH))
    for box in (metered, plain):
        box.sock.connect("inproc://meter")
    metered.send(b"x" * 100)
    metered.send(b"y" * 20)
    plain.send(b"z" * 1000)  # a peer on this node: not counted
    assert (meter.frames, meter.bytes) == (2, 120)
    for box in (metered, plain):
        box.close()
    server.close(linger=0)
    ctx.term()


def test_the_spiller_counts_payloads_fetched_from_other_nodes_only(tmp_path):
    store = BlobStore(tmp_path / "s", 1 << 20)
    asked: list[tuple[str, list[str]]] = []

    async def fetch(node: str, keys: list[str]) -> list[bytes | None]:
        asked.append((node, keys))
        return [b"r" * 700 for _ in keys]

    spiller = Spiller(store, "node-0", 64, fetch)
    local = Orchestrator(task_id="a:0", row_id="a", trial=0, seed=1, origin="p",
                         row=msgspec.Raw(b'"' + b"l" * 300 + b'"'))
    spiller.spill(local)
    Spiller.strip(local)
    remote = Orchestrator(task_id="b:0", row_id="b", trial=0, seed=1, origin="p", row=msgspec.Raw(b"null"),
                          row_ref=SpillRef(node="node-1", key="b:0/k", size=700))

    async def fill_both() -> None:
        await spiller.fill(local)
        await spiller.fill(remote)
        await spiller.fill(remote)  # filled already: no second fetch

    asyncio.run(fill_both())
    assert asked == [("node-1", ["b:0/k"])]
    assert (spiller.fetches, spiller.fetched_bytes) == (1, 700)
    store.close()


def _stats(run: RunDir, name: str, shard: int, cross: dict[str, int]) -> None:
    run.state.mkdir(parents=True, exist_ok=True)
    (run.state / f"stats-peer-{name}.json").write_text(json.dumps(
        {"peer_id": name, "shard": shard, "received": {}, "cross_node": cross}))


def test_summary_and_status_sum_every_incarnation_of_every_peer(tmp_path):
    run = RunDir(tmp_path)
    _stats(run, "peer-0.a", 0, {"bytes_sent": 1000, "frames_sent": 10, "spill_bytes_fetched": 600, "spill_fetches": 3})
    _stats(run, "peer-0.b", 0, {"bytes_sent": 500, "frames_sent": 5, "tool_bytes": 70, "from_a_newer_peer": 9})
    _stats(run, "peer-1.c", 1, {"bytes_sent": 24, "frames_sent": 1})
    (run.state / "stats-peer-torn.json").write_text('{"peer_id": ')  # being rewritten as we read
    total = cross_node(run.state)
    assert total == CrossNode(bytes_sent=1524, frames_sent=16, spill_bytes_fetched=600, spill_fetches=3, tool_bytes=70)
    summary = msgspec.json.decode(msgspec.json.encode(Summary(
        workflow="nr", tasks_total=0, tasks_ok=0, tasks_rejected=0, tasks_failed=0, prompt_tokens=0,
        completion_tokens=0, wall_s=1, tokens_per_s=0, tasks_per_s=0, reasons={}, usage_by_role={}, metrics={},
        cross_node=total)))
    assert summary["cross_node"]["bytes_sent"] == 1524
    shown = render(collect(run, 0.0), run, 0.0)
    assert ("between nodes: 1524 bytes sent peer to peer (0.0 MiB, 16 frames); spilled payloads fetched: "
            "600 bytes in 3 fetches; tool pools: 70 bytes") in shown


def test_a_run_on_one_node_shows_no_cross_node_line(tmp_path):
    run = RunDir(tmp_path)
    _stats(run, "peer-0.a", 0, {"bytes_sent": 0, "frames_sent": 0})
    assert cross_node(run.state) == CrossNode()
    assert "between nodes" not in render(collect(run, 0.0), run, 0.0)
