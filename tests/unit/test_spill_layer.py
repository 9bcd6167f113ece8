"""The peer's spill layer and its no-op twin: one interface, one contract.

A task that goes through the data path's steps (spill after a role, strip before the
wire, fill on the next peer, take its refs at home, free them after the write) comes
out the same whichever layer ``spill.enabled`` chose; with spill on, its payloads
travel as refs and are gone once freed."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import msgspec
import pytest

from slurmgen.config.types import SpillConf
from slurmgen.protocol import Blobs, Failure, FetchBlobs, FreeBlobs, Orchestrator, Status, Turn
from slurmgen.registry.membership import MemberView
from slurmgen.runtime.blobs import BlobService, NoSpill, SpillLayer, spill_layer
from slurmgen.transport import codec

ROW = b'{"text": "' + b"r" * 2000 + b'"}'
REPLY = "a" * 3000


def task() -> Orchestrator:
    return Orchestrator(task_id="t:0", row_id="t", trial=0, seed=1, origin="peer-0.x", row=msgspec.Raw(ROW),
                        history=[Turn(role="solve", content=REPLY), Turn(role="check", content="short")])


def layer(kind: str, tmp_path: Path) -> tuple[SpillLayer, collections.Counter[str]]:
    received: collections.Counter[str] = collections.Counter()
    conf = SpillConf(enabled=kind == "spill", dir=str(tmp_path / "spill"), max_bytes=1 << 22)
    sent: list[object] = []
    return spill_layer(conf, tmp_path, "node-0", MemberView(grace_s=5), lambda p, m: sent.append(m) or True,
                       received), received


def over_the_wire(orch: Orchestrator) -> Orchestrator:
    return msgspec.json.decode(codec.encode(orch), type=Orchestrator)


@pytest.mark.parametrize("kind", ["spill", "inline"])
def test_a_task_comes_out_of_the_data_path_the_same_with_either_layer(kind: str, tmp_path: Path) -> None:
    spill, _ = layer(kind, tmp_path)
    assert isinstance(spill, BlobService if kind == "spill" else NoSpill)
    orch = task()
    spill.spill(orch)
    spill.strip(orch)
    wire = codec.encode(orch)
    assert (len(wire) < 1000) is (kind == "spill")  # spilled parts do not travel
    arrived = over_the_wire(orch)
    assert asyncio.run(spill.fill(arrived)) is True
    assert bytes(arrived.row) == ROW and [t.content for t in arrived.history] == [REPLY, "short"]
    refs = spill.take_refs(arrived)
    assert arrived.row_ref is None and all(t.content_ref is None for t in arrived.history)
    assert sorted(refs) == (["node-0"] if kind == "spill" else []) and sum(map(len, refs.values())) == \
        (2 if kind == "spill" else 0)
    spill.free(refs)
    assert (spill.fetches, spill.fetched_bytes) == (0, 0)  # one node: nothing fetched
    spill.close()


def test_a_freed_payload_fails_its_task_as_lost_when_filled_again(tmp_path: Path) -> None:
    spill, _ = layer("spill", tmp_path)
    orch = task()
    spill.spill(orch)
    spill.strip(orch)
    late = over_the_wire(orch)  # a duplicate still on its way when the first copy was written
    spill.free(spill.take_refs(over_the_wire(orch)))
    assert asyncio.run(spill.fill(late)) is False
    assert late.status is Status.FAILED and Failure.of(late.reason) is Failure.LOST
    assert spill.stats()["used_bytes"] >= 0 and spill.stats()["inline_fallbacks"] == 0
    spill.close()


def test_spill_messages_reaching_a_peer_without_spill_are_counted_and_dropped(tmp_path: Path) -> None:
    spill, received = layer("inline", tmp_path)
    for msg in (FetchBlobs(request_id=1, keys=["k"]), Blobs(request_id=1, blobs=[None]), FreeBlobs(keys=["k"])):
        spill.on_message("peer-1.y", msg)
    assert received == {"blobs_without_spill": 3} and spill.stats() == {}


def test_a_fetch_is_answered_from_the_nodes_store_and_counted(tmp_path: Path) -> None:
    spill, received = layer("spill", tmp_path)
    assert isinstance(spill, BlobService)
    answers: list[tuple[str, msgspec.Struct]] = []
    spill.send = lambda peer, msg: answers.append((peer, msg)) or True
    orch = task()
    spill.spill(orch)
    assert orch.row_ref is not None
    spill.on_message("peer-1.y", FetchBlobs(request_id=7, keys=[orch.row_ref.key, "gone"]))
    assert received["fetch"] == 1
    assert answers == [("peer-1.y", Blobs(request_id=7, blobs=[ROW, None]))]
    spill.close()
