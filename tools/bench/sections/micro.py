"""Section ``micro``: CPU µs per hop (4 KiB task message, two processes, real sockets, codec, router)
and per LLM call in the client (real ``LLMClient``, zero-latency replica); see ``../micro.py``."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

import msgspec

from ..common import SimFleet, log
from ..harness import BENCH_PY
from ..micro import run_hop
from ..section import Context, Row, SectionResult
from .fmt import fmt

# hop configurations: 64 task messages circulating (also with CurveZMQ on, and on pyzmq's asyncio
# send/recv), and one (ping-pong)
HOPS: dict[str, dict[str, Any]] = {
    "w64": dict(window=64, batched=True), "w64_curve": dict(window=64, curve_on=True, batched=True),
    "w1": dict(window=1, batched=True), "w64_futures": dict(window=64)}
HOP_NOTE = ("the runtime's hot path (slurmgen.runtime.outbox: drain the inbox non-blocking, send "
            "non-blocking on the socket's shadow); w64: 64 task messages circulating; w1: one "
            "(ping-pong); curve: CurveZMQ on; futures: pyzmq's asyncio send/recv per message, "
            "the runtime's earlier path, for comparison")


class Params(msgspec.Struct, kw_only=True):
    micro_repeats: int  # interleaved repeats of each hop configuration and of the client (medians reported)
    hop_s: float  # s measured per hop run
    client_s: float  # s measured per client run


class HopResult(msgspec.Struct):
    cpu_us_per_hop_median: dict[str, float]
    runs: dict[str, list[dict[str, Any]]]
    note: str = HOP_NOTE


class ClientResult(msgspec.Struct):
    runs: list[dict[str, Any]]
    cpu_us_per_call_median: float


class Result(SectionResult, kw_only=True):
    hop: HopResult
    cpu_us_per_hop: float  # the run's CurveZMQ setting's median
    client: ClientResult
    cpu_us_per_llm_call: float


def hops(ctx: Context, p: Params) -> HopResult:
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in HOPS}
    for _ in range(p.micro_repeats):  # interleaved repeats; the median of each is reported
        for k, kw in HOPS.items():
            runs[k].append(run_hop(BENCH_PY, duration=p.hop_s, tmp=ctx.out, **kw))
    med = {k: statistics.median(h["cpu_us_per_hop"] for h in v) for k, v in runs.items()}
    log(f"hop: {med} µs")
    return HopResult(cpu_us_per_hop_median=med, runs=runs)


def client(p: Params) -> ClientResult:
    runs = []
    with SimFleet(1, "coral", profile="zero", time_scale=0) as fleet:
        for _ in range(p.micro_repeats):
            out = subprocess.run([sys.executable, BENCH_PY, "client-bench", "--url", fleet.urls[0], "--window",
                                  "64", "--duration", str(p.client_s)], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    res = ClientResult(runs=runs, cpu_us_per_call_median=statistics.median(c["cpu_us_per_call"] for c in runs))
    log(f"client: {res.cpu_us_per_call_median} µs per call")
    return res


def rows(r: dict[str, Any]) -> list[Row]:
    return [("CPU per hop, 4 KiB (µs)", fmt(r.get("cpu_us_per_hop")), "<= 100"),
            ("CPU per LLM call in the client (µs)", fmt(r.get("cpu_us_per_llm_call")), "<= 300")]


class Micro:
    name = "micro"
    opt_in = False
    quick = Params(micro_repeats=1, hop_s=1.5, client_s=2.0)
    full = Params(micro_repeats=3, hop_s=5.0, client_s=6.0)
    table = ((30, rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        hop = hops(ctx, p)
        cli = client(p)
        med = hop.cpu_us_per_hop_median
        return Result(hop=hop, cpu_us_per_hop=med["w64_curve"] if ctx.curve_on else med["w64"], client=cli,
                      cpu_us_per_llm_call=cli.cpu_us_per_call_median)
