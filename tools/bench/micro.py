"""Micro-benchmarks of slurmgen's own code paths, each in its own processes.

``hop``: two processes, each with a peer's sockets exactly as a peer makes them
(``slurmgen.transport.sockets.Sockets``: a ROUTER inbox, DEALER outboxes, CurveZMQ when keys
are given), the peer codec (``slurmgen.transport.codec``), the ``CreditRouter`` and the
``Orchestrator`` / ``Credit`` messages. A task message of 4 KiB goes A -> B -> A ...;
each receipt does what ``Peer._receive`` + ``Peer._work``'s end + ``Peer._deliver``
do around a role: decode, count, give a Credit back to the sender, pick the next peer
with the router, encode, send. ``window`` messages circulate at once. CPU of both
processes / messages received = CPU per hop.

``client``: ``LLMClient.chat`` against one zero-latency simulator replica, ``window``
calls at once; the client process's CPU / calls = CPU per LLM call in the client.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import msgspec

PAYLOAD_BYTES = 4096


def make_orch(size: int = PAYLOAD_BYTES) -> object:
    from slurmgen.protocol import Orchestrator, Turn

    orch = Orchestrator(task_id="row-000001:0", row_id="row-000001", trial=0, seed=12345, origin="peer-A",
                        next_role="work", row=msgspec.Raw(b'{"text":""}'),
                        history=[Turn(role="work", content="x" * 100, prompt_tokens=10, completion_tokens=5)])
    from slurmgen.transport import codec

    base = len(codec.encode(orch))
    orch.row = msgspec.Raw(b'{"text":"' + b"a" * max(0, size - base) + b'"}')
    return orch


async def _hop_peer(name: str, other: str, start_at: float, warm: float, duration: float, window: int,
                    keys_dir: str, batched: bool = False) -> dict[str, float]:
    import zmq
    import zmq.asyncio

    from slurmgen.protocol import Credit, Member, Orchestrator
    from slurmgen.runtime.outbox import Outbox, drain
    from slurmgen.runtime.router import CreditRouter
    from slurmgen.transport import codec, curve, sockets

    ctx = zmq.asyncio.Context()
    keys = curve.load(Path(keys_dir)) if keys_dir else None
    socks = sockets.Sockets(ctx, keys)
    inbox, address = socks.bind_router("127.0.0.1")
    print(json.dumps({"address": address}), flush=True)
    other_addr = (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()
    outbox = socks.connect_dealer(other_addr, name)
    router = CreditRouter()
    router.update([Member(peer_id=other, kind="peer", address=other_addr, roles=("work",), capacity=1 << 20)])
    decoder = codec.peer_decoder()
    received: collections.Counter[str] = collections.Counter()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    if name == "A":
        proto = make_orch()
        for i in range(window):
            o = msgspec.structs.replace(proto, task_id=f"row-{i:06d}:0")  # type: ignore[type-var]
            if router.pick("work") is not None:
                outbox.send(codec.encode(o))

    t_measure = start_at + warm
    t_end = t_measure + duration
    counted = 0
    cpu0 = None

    def handle(frames: list[bytes], send: Callable[[bytes], object]) -> None:
        """One hop: what a peer does with a frame (codec, credit, router), on either send path."""
        nonlocal counted, cpu0
        if cpu0 is None and time.time() >= t_measure:
            cpu0, counted = os.times(), 0
        sender = frames[0].decode(errors="replace")
        msg = decoder.decode(frames[1])
        match msg:
            case Orchestrator():
                received["orch"] += 1
                counted += 1
                send(codec.encode(Credit(n=1)))  # the handler finished: credit the sender
                msg.step += 1
                if router.pick(msg.next_role) is not None:
                    send(codec.encode(msg))
            case Credit(n=n):
                received["credit"] += 1
                router.credit(sender, n)

    async def loop() -> None:
        """The first design: one pyzmq future per receive and per send."""
        while True:
            handle(await inbox.recv_multipart(), outbox.send)

    async def loop_batched() -> None:
        """The runtime's own hot path (slurmgen.runtime.outbox): drain the inbox with non-blocking reads
        when its FD signals, send non-blocking on the socket's shadow; same codec, router and messages."""
        out = Outbox(outbox)
        await drain(inbox, lambda frames: handle(frames, out.send))

    task = asyncio.ensure_future(loop_batched() if batched else loop())
    await asyncio.sleep(max(0.0, t_end - time.time()))
    cpu1 = os.times()
    n = counted
    task.cancel()
    c0 = cpu0 or cpu1
    out = {"name": name, "hops": n, "cpu_s": cpu1.user + cpu1.system - c0.user - c0.system,
           "bytes": len(codec.encode(make_orch())), "credits": received["credit"]}
    outbox.close()
    inbox.close()
    socks.close()
    ctx.term()
    return out


def hop_peer_main(a: Any) -> int:
    """``python tools/bench.py hop-peer ...`` (its arguments: cli.py)."""
    import uvloop

    out = uvloop.run(_hop_peer(a.name, a.other, a.start_at, a.warm, a.duration, a.window, a.keys_dir, a.batched))
    print(json.dumps(out), flush=True)
    return 0


def run_hop(bench_py: str, *, window: int, duration: float, warm: float = 1.0, curve_on: bool = False,
            tmp: Path, batched: bool = False) -> dict[str, float]:
    """Start the two hop processes, exchange addresses, return CPU µs per hop."""
    import shutil
    import subprocess
    import tempfile

    keys_dir = ""
    if curve_on:  # throw-away key pairs, never in the output directory
        from slurmgen.transport import curve

        keys_dir = tempfile.mkdtemp(prefix="slurmgen-bench-keys-")
        curve.generate(Path(keys_dir))
    start_at = time.time() + 2.5
    procs = {}
    for name, other in (("A", "B"), ("B", "A")):
        procs[name] = subprocess.Popen(
            [sys.executable, bench_py, "hop-peer", "--name", name, "--other", other, "--start-at", str(start_at),
             "--warm", str(warm), "--duration", str(duration), "--window", str(window), "--keys-dir", keys_dir,
             *(["--batched"] if batched else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    addrs = {n: json.loads(p.stdout.readline())["address"] for n, p in procs.items()}  # type: ignore[union-attr]
    procs["A"].stdin.write(addrs["B"] + "\n")  # type: ignore[union-attr]
    procs["A"].stdin.flush()  # type: ignore[union-attr]
    procs["B"].stdin.write(addrs["A"] + "\n")  # type: ignore[union-attr]
    procs["B"].stdin.flush()  # type: ignore[union-attr]
    outs = []
    try:
        for p in procs.values():
            out, _ = p.communicate(timeout=warm + duration + 60)
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        if keys_dir:
            shutil.rmtree(keys_dir, ignore_errors=True)
    hops = sum(o["hops"] for o in outs)
    cpu = sum(o["cpu_s"] for o in outs)
    return {"window": window, "curve": curve_on, "batched": batched, "hops": hops, "hops_per_s": hops / duration,
            "cpu_s": round(cpu, 4), "cpu_us_per_hop": round(cpu / max(hops, 1) * 1e6, 2),
            "message_bytes": outs[0]["bytes"]}


# -- client ------------------------------------------------------------------------------


async def _client_bench(url: str, window: int, warm: float, duration: float) -> dict[str, float]:
    from slurmgen.llm.client import LLMClient
    from slurmgen.llm.types import ChatMessage, Endpoint, Sampling

    client = LLMClient()
    client.set_endpoints([Endpoint(url=url, model="sim-llama-3.1-8b")])
    system = "You extract the final multiple-choice answer from a message. " * 8
    user = ("Message: Let us reason step by step about the problem and the options (A) to (J). " * 10
            + "So the answer is (C).")
    messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=32)
    calls = 0
    t_measure = time.monotonic() + warm
    t_end = t_measure + duration
    cpu0 = None
    measured = 0

    async def worker(i: int) -> None:
        nonlocal calls, cpu0, measured
        while time.monotonic() < t_end:
            await client.chat(messages, sampling=sampling, seed=i + calls)
            calls += 1
            if time.monotonic() >= t_measure:
                if cpu0 is None:
                    cpu0 = os.times()
                    measured = 0
                else:
                    measured += 1

    await asyncio.gather(*(worker(i) for i in range(window)))
    cpu1 = os.times()
    await client.close()
    c0 = cpu0 or cpu1
    cpu = cpu1.user + cpu1.system - c0.user - c0.system
    return {"window": window, "calls": measured, "cpu_s": round(cpu, 4),
            "cpu_us_per_call": round(cpu / max(measured, 1) * 1e6, 2)}


def client_main(a: Any) -> int:
    """``python tools/bench.py client-bench ...`` (its arguments: cli.py)."""
    import uvloop

    print(json.dumps(uvloop.run(_client_bench(a.url, a.window, a.warm, a.duration))), flush=True)
    return 0
