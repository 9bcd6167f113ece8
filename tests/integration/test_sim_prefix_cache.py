"""The simulator's prefix cache and priority policy, seen from a client over real sockets: a
conversation's second turn hits the cache its first turn filled (vLLM's metric names count
it), a server started without caching never hits, and `priority` is accepted only by a
server started with --scheduling-policy priority (as vLLM answers: 400 otherwise)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.simproc import SimProc, start_sim, stop_sim

MODEL = "sim-test"
SYSTEM = "You are a careful assistant. " * 40  # a long shared prefix: many full blocks


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProc]:
    proc = start_sim(model=MODEL, time_scale=0, max_model_len=8192)
    yield proc
    stop_sim(proc)


async def _post(url: str, body: dict[str, Any]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.post(url + "/v1/chat/completions", json=body) as resp:
        return resp.status, msgspec.json.decode(await resp.read())


async def _metrics(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("vllm:") and "_bucket" not in line:
            name, value = line.split("{", 1)[0], line.rsplit(" ", 1)[1]
            out[name] = out.get(name, 0.0) + float(value)
    return out


def post(url: str, body: dict[str, Any]) -> tuple[int, dict]:
    return asyncio.run(_post(url, body))


def metrics(url: str) -> dict[str, float]:
    return asyncio.run(_metrics(url))


def conversation(url: str) -> tuple[dict, dict]:
    """Two turns of one conversation; each turn's usage."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Name three seas."}]
    status, first = post(url, {"model": MODEL, "messages": messages, "max_tokens": 40})
    assert status == 200, first
    messages += [{"role": "assistant", "content": first["choices"][0]["message"]["content"]},
                 {"role": "user", "content": "And three rivers?"}]
    status, second = post(url, {"model": MODEL, "messages": messages, "max_tokens": 40})
    assert status == 200, second
    return first["usage"], second["usage"]


def test_the_second_turn_hits_the_prefix_the_first_cached(sim: SimProc) -> None:
    before = metrics(sim.url)
    first, second = conversation(sim.url)
    after = metrics(sim.url)
    queries = after["vllm:prefix_cache_queries_total"] - before["vllm:prefix_cache_queries_total"]
    hits = after["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"]
    assert queries == first["prompt_tokens"] + second["prompt_tokens"]  # counted in tokens, as vLLM
    # turn 2 starts with turn 1's prompt and reply: all their full 16-token blocks hit
    whole = first["prompt_tokens"] + first["completion_tokens"]
    assert whole - 16 <= hits < whole and hits % 16 == 0  # the last reply token's KV is never computed
    assert 0 <= after["vllm:kv_cache_usage_perc"] <= 1 and "vllm:num_preemptions_total" in after
    assert after["vllm:cache_config_info"] == 1  # its labels name block_size and num_gpu_blocks, as vLLM's


def test_a_server_without_prefix_caching_never_hits() -> None:
    off = start_sim(model=MODEL, time_scale=0, max_model_len=8192, no_enable_prefix_caching=True)
    try:
        conversation(off.url)
        seen = metrics(off.url)
        assert seen["vllm:prefix_cache_hits_total"] == seen["vllm:prefix_cache_queries_total"] == 0  # as vLLM
    finally:
        assert stop_sim(off) == 0


def test_priority_needs_the_priority_policy(sim: SimProc) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "priority": 3}
    status, error = post(sim.url, body)
    assert status == 400 and "Priority scheduling is not enabled" in error["error"]["message"]
    prio = start_sim(model=MODEL, time_scale=0, scheduling_policy="priority")
    try:
        status, reply = post(prio.url, body)
        assert status == 200 and reply["usage"]["completion_tokens"] >= 1
    finally:
        assert stop_sim(prio) == 0
