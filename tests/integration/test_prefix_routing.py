"""Prefix-aware routing over two real simulators: each conversation's turns go to the replica
that holds its prefix, so the replicas' prefix-cache hit rate (their /metrics) is higher than
with least-outstanding routing, which alternates replicas between turns."""

from __future__ import annotations

import asyncio
import urllib.request

from slurmgen.llm.affinity import Routing
from slurmgen.llm.client import LLMClient
from slurmgen.llm.types import ChatMessage, Endpoint, Sampling
from slurmgen.sim.content import lorem
from tests.simproc import SimProc, start_sim, stop_sim

MODEL = "sim-test"


def served(routing: str) -> float:
    """The replicas' hit rate after the conversations, on two fresh simulators."""
    sims = [start_sim(model=MODEL, time_scale=0, max_model_len=8192) for _ in range(2)]
    try:
        asyncio.run(conversations(routing, [s.url for s in sims]))
        return hit_rate(sims)
    finally:
        for sim in sims:
            assert stop_sim(sim) == 0


def hit_rate(sims: list[SimProc]) -> float:
    hits = queries = 0.0
    for sim in sims:
        text = urllib.request.urlopen(sim.url + "/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith("vllm:prefix_cache_hits_total{"):
                hits += float(line.rsplit(" ", 1)[1])
            elif line.startswith("vllm:prefix_cache_queries_total{"):
                queries += float(line.rsplit(" ", 1)[1])
    return hits / queries


async def conversations(routing: str, urls: list[str]) -> None:
    import random

    rng = random.Random(5)
    llm = LLMClient(route=Routing(policy=routing))
    llm.set_endpoints([Endpoint(url=u, model=MODEL) for u in urls])
    chats = [[ChatMessage(role="user", content=lorem(rng, 200))] for _ in range(5)]  # odd: turn by turn, ties alternate
    for _ in range(4):  # turn after turn, one conversation at a time
        for i, messages in enumerate(chats):
            reply = await llm.chat(messages, sampling=Sampling(max_tokens=30), sticky_key=f"task-{i}")
            messages += [ChatMessage(role="assistant", content=reply.content),
                         ChatMessage(role="user", content=lorem(rng, 20))]
    await llm.close()


def test_prefix_routing_keeps_each_conversation_on_its_cache() -> None:
    least, prefix = served("least_outstanding"), served("prefix")
    # every turn after the first hits the whole turn before it; least-outstanding sends turn 2 to
    # the other replica (turn 3 then finds turn 1 there: a partial hit)
    assert prefix > 0.6 and prefix > least + 0.2, (prefix, least)
