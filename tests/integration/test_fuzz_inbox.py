"""Fuzz live peer inboxes during a run: random, truncated and wrong-typed frames and
bogus tasks from an authenticated client. No peer crashes; every task is written once."""

import asyncio
import json
import random
import subprocess
import sys
import time

import msgspec
import zmq
import zmq.asyncio

from slurmgen.protocol import Lookup, Orchestrator, Table
from slurmgen.registry.server import RegistryAddress
from slurmgen.transport import codec, curve, sockets
from tests.conftest import REPO, count_records, read_records


def frames(rng: random.Random) -> list[bytes]:
    good = codec.encode(Orchestrator(task_id="evil:0", row_id="evil", trial=0, seed=1, origin="nobody",
                                     next_role="filter", row=msgspec.Raw(b'{"text": 1}')))
    home = codec.encode(Orchestrator(task_id="x:0", row_id="x", trial=0, seed=1, origin="nobody"))
    out = [rng.randbytes(rng.randint(0, 300)) for _ in range(100)]
    out += [good[: rng.randint(0, len(good) - 1)] for _ in range(50)]
    out += [b'{"type":"orch","task_id":5}', b'{"type":"credit","n":"many"}', b'{"type":"hold","task_ids":[1]}',
            b'{"type":"fetch","request_id":1,"keys":["nope"]}', b"[]", b"null", good, home]
    return out


async def fuzz(run_dir) -> int:
    keys = curve.load(run_dir)
    ctx = zmq.asyncio.Context()
    factory = sockets.Sockets(ctx, keys)
    address = msgspec.json.decode((run_dir / "registry.json").read_bytes(), type=RegistryAddress)
    reg = factory.connect_dealer(address.router, "fuzzer-lookup")
    await reg.send(codec.encode(Lookup()))
    table = codec.registry_reply_decoder().decode(await reg.recv())
    assert isinstance(table, Table)
    rng = random.Random(3)
    sent = 0
    for member in [m for m in table.members if m.kind == "peer"]:
        dealer = factory.connect_dealer(member.address, "fuzzer")
        dealer.linger = 10_000  # deliver everything even if the CURVE handshake is slow under load
        for frame in frames(rng):
            await dealer.send(frame)
            sent += 1
        await dealer.send_multipart([b"a", b"b", b"c"])  # wrong frame count
        dealer.close()
    reg.close()
    await asyncio.sleep(0.5)
    factory.close()
    ctx.term()
    return sent


def test_fuzzed_inboxes_do_not_crash_peers(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slurmgen", "workflow=nr", "dataset.limit=300", f"run.dir={run_dir}",
            "llm.time_scale=10", "run.max_in_flight=32", "run.max_restarts=0"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while count_records(run_dir) < 20:
            assert driver.poll() is None
            time.sleep(0.1)
        sent = asyncio.run(fuzz(run_dir.resolve()))
        _, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err  # max_restarts=0: a crashed peer would have failed the run
    assert sent > 300
    recs = read_records(run_dir)
    assert len(recs) == 300 and len({r.task_id for r in recs}) == 300
    assert "evil:0" not in {r.task_id for r in recs}
    stats = [json.loads(p.read_text()) for p in (run_dir / "state").glob("stats-peer-*.json")]
    assert sum(s["refused_frames"] + s["received"].get("malformed", 0) for s in stats) >= 150, stats
