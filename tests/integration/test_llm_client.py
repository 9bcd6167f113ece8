"""LLMClient against real simulator processes and tiny in-process HTTP servers."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest
from aiohttp import web

from slurmgen.errors import LLMError
from slurmgen.llm.affinity import Routing
from slurmgen.llm.client import LLMClient
from slurmgen.llm.types import ChatMessage, ChatReply, Endpoint, Sampling, ToolCall, ToolFunction
from tests.simproc import SimProc, start_sim, stop_sim

MODEL = "sim-test"
SAMPLING = Sampling(max_tokens=32)
ASK = [ChatMessage(role="user", content="Say something.")]


@pytest.fixture(scope="module")
def pair() -> Iterator[list[SimProc]]:
    sims = [start_sim(model=MODEL, time_scale=20, script="tests.simproc:fill_max_tokens") for _ in range(2)]
    yield sims
    for sim in sims:
        stop_sim(sim)


def endpoints(sims: list[SimProc]) -> list[Endpoint]:
    return [Endpoint(url=s.url, model=s.model) for s in sims]


def run(coro_fn: Callable[[LLMClient], Awaitable[Any]], eps: list[Endpoint], **kw: Any) -> Any:
    async def main() -> Any:
        client = LLMClient(**{"backoff_s": 0.02, **kw})
        client.set_endpoints(eps)
        try:
            return await coro_fn(client)
        finally:
            await client.close()

    return asyncio.run(main())


@contextlib.asynccontextmanager
async def fake_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def completion(content: str = "ok") -> web.Response:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return web.json_response(body)


def test_requests_spread_over_replicas(pair: list[SimProc]) -> None:
    async def go(client: LLMClient) -> list[ChatReply]:
        return await asyncio.gather(*(client.chat(ASK, sampling=SAMPLING, seed=i) for i in range(20)))

    replies = run(go, endpoints(pair))
    per_url = collections.Counter(r.endpoint for r in replies)
    assert set(per_url) == {s.url for s in pair}
    assert min(per_url.values()) >= 7  # fewest-outstanding balancing: 10/10 up to timing
    assert all(r.usage.completion_tokens == 32 and r.content for r in replies)


def test_sticky_key_keeps_its_replica(pair: list[SimProc]) -> None:
    async def go(client: LLMClient) -> tuple[set[str], set[str]]:
        same = {(await client.chat(ASK, sampling=SAMPLING, sticky_key="task-7")).endpoint for _ in range(6)}
        keys = await asyncio.gather(*(client.chat(ASK, sampling=SAMPLING, sticky_key=f"t{i}") for i in range(24)))
        return same, {r.endpoint for r in keys}

    same, spread = run(go, endpoints(pair), route=Routing(policy="sticky"))
    assert len(same) == 1
    assert spread == {s.url for s in pair}  # different keys land on both replicas


def test_killed_replica_requests_are_retried_on_the_other() -> None:
    sims = [start_sim(model=MODEL, time_scale=1, script="tests.simproc:fill_max_tokens") for _ in range(2)]
    victim, survivor = sims
    try:

        async def go(client: LLMClient) -> tuple[list[ChatReply], dict]:
            calls = [client.chat(ASK, sampling=Sampling(max_tokens=60), seed=i) for i in range(8)]
            tasks = [asyncio.ensure_future(c) for c in calls]
            await asyncio.sleep(0.25)  # every request is in flight, half of them on the victim
            assert client.outstanding()[victim.url] > 0
            stop_sim(victim, sig=signal.SIGKILL)
            return await asyncio.gather(*tasks), client.stats()

        replies, stats = run(go, endpoints(sims))
        assert {r.endpoint for r in replies} == {survivor.url}
        assert stats[victim.url].errors >= 1 and stats[victim.url].retries == stats[victim.url].errors
        assert stats[survivor.url].ok == 8
    finally:
        for sim in sims:
            stop_sim(sim)


def test_server_errors_are_retried_with_backoff() -> None:
    hits: list[float] = []

    async def flaky(request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        if len(hits) == 1:
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if len(hits) == 2:
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "0.3"})
        return completion("third time lucky")

    async def go() -> tuple[ChatReply, Any]:
        async with fake_server(flaky) as url:
            client = LLMClient(backoff_s=0.01)
            client.set_endpoints([Endpoint(url=url, model="m")])
            try:
                return await client.chat(ASK, sampling=SAMPLING), client.stats()[url]
            finally:
                await client.close()

    reply, stats = asyncio.run(go())
    assert reply.content == "third time lucky" and reply.usage.total_tokens == 4
    assert len(hits) == 3 and (stats.requests, stats.errors, stats.retries, stats.ok) == (3, 2, 2, 1)
    assert stats.rate_limited == 1
    assert hits[2] - hits[1] >= 0.29  # Retry-After honoured (by pausing the pool)


def test_persistent_errors_raise_llm_error_naming_endpoint_and_status() -> None:
    hits = []

    async def broken(request: web.Request) -> web.Response:
        hits.append(1)
        return web.json_response({"object": "error", "message": "engine dead", "code": 503}, status=503)

    async def go() -> LLMError:
        async with fake_server(broken) as url:
            client = LLMClient(backoff_s=0.001, max_retries=2)
            client.set_endpoints([Endpoint(url=url, model="m")])
            try:
                with pytest.raises(LLMError) as info:
                    await client.chat(ASK, sampling=SAMPLING)
                assert url in str(info.value)
                return info.value
            finally:
                await client.close()

    err = asyncio.run(go())
    assert len(hits) == 3 and err.kind == "llm_error"
    assert "HTTP 503" in str(err) and "engine dead" in str(err)


def test_a_request_whose_server_dies_twice_is_given_up_as_server_died() -> None:
    """A poison request kills every server it reaches: the client stops at its second server death
    (not after all its retries) and names the class, so the origin counts engine deaths per try."""
    hits = []

    async def dies(request: web.Request) -> web.Response:
        hits.append(1)
        assert request.transport is not None
        request.transport.abort()  # the process died mid-request: the connection drops, no reply
        await asyncio.sleep(5)
        return completion()

    async def go() -> LLMError:
        async with fake_server(dies) as url:
            client = LLMClient(backoff_s=0.001, max_retries=4)
            client.down_s = 0.0  # the one replica is tried again at once
            client.set_endpoints([Endpoint(url=url, model="m")])
            try:
                with pytest.raises(LLMError) as info:
                    await client.chat(ASK, sampling=SAMPLING)
                return info.value
            finally:
                await client.close()

    err = asyncio.run(go())
    assert err.kind == "server_died" and "after 2 attempts" in str(err), str(err)
    assert len(hits) == 2


def test_other_client_errors_are_bad_requests_not_retried() -> None:
    hits = []

    async def reject(request: web.Request) -> web.Response:
        hits.append(1)
        if (await request.json())["model"] != "m":  # vLLM's answer to an unknown model
            return web.json_response({"error": {"message": "The model `x` does not exist."}}, status=404)
        return web.json_response({"error": {"message": "max_tokens=10240 cannot be greater than "
                                                       "max_model_len=2048"}}, status=400)

    async def go() -> list[LLMError]:
        errors = []
        async with fake_server(reject) as url:
            client = LLMClient(backoff_s=0.001)
            client.set_endpoints([Endpoint(url=url, model="m"), Endpoint(url=url + "/", model="x")])
            for model in ("m", "x"):
                with pytest.raises(LLMError) as info:
                    await client.chat(ASK, sampling=SAMPLING, model=model)
                errors.append(info.value)
            await client.close()
        return errors

    too_long, unknown = asyncio.run(go())
    assert len(hits) == 2  # one attempt each
    assert too_long.kind == unknown.kind == "bad_request"
    assert "HTTP 400" in str(too_long) and "max_model_len=2048" in str(too_long)
    assert "HTTP 404" in str(unknown) and "does not exist" in str(unknown)


def test_timeout_gives_kind_timeout() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return completion()

    async def go() -> None:
        async with fake_server(slow) as url:
            client = LLMClient(request_timeout_s=0.2, max_retries=1, backoff_s=0.001)
            client.set_endpoints([Endpoint(url=url, model="m")])
            with pytest.raises(LLMError) as info:
                await client.chat(ASK, sampling=SAMPLING)
            await client.close()
            assert info.value.kind == "timeout" and client.stats()[url].requests == 2

    asyncio.run(go())


def test_context_length_error_is_not_retried() -> None:
    sim = start_sim(model=MODEL, time_scale=0, max_model_len=256)
    try:

        async def go(client: LLMClient) -> tuple[LLMError, Any]:
            long = [ChatMessage(role="user", content="word " * 400)]
            with pytest.raises(LLMError) as info:
                await client.chat(long, sampling=SAMPLING)
            return info.value, client.stats()[sim.url]

        err, stats = run(go, endpoints([sim]))
        assert err.kind == "context_too_long" and "maximum context length" in str(err)
        assert stats.requests == 1 and stats.retries == 0
    finally:
        stop_sim(sim)


def test_no_replica_waits_then_explains(pair: list[SimProc]) -> None:
    async def go() -> ChatReply:
        client = LLMClient(endpoint_wait_s=0.2)
        try:
            with pytest.raises(LLMError, match="no LLM replica"):
                await client.chat(ASK, sampling=SAMPLING)
            pending = asyncio.ensure_future(client.chat(ASK, sampling=SAMPLING))
            await asyncio.sleep(0.05)
            client.set_endpoints(endpoints(pair[:1]))  # registered while the request waits
            return await pending
        finally:
            await client.close()

    assert asyncio.run(go()).endpoint == pair[0].url


def test_concurrency_cap_and_tool_call_wire_format() -> None:
    seen: list[dict] = []
    inflight = [0, 0]  # current, max

    async def record(request: web.Request) -> web.Response:
        seen.append(msgspec.json.decode(await request.read()))
        inflight[0] += 1
        inflight[1] = max(inflight)
        await asyncio.sleep(0.02)
        inflight[0] -= 1
        return completion()

    call = ToolCall(id="c1", function=ToolFunction(name="noop"))  # default arguments "{}"
    history = [
        *ASK,
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="c1", content="{}"),
    ]

    async def go() -> None:
        async with fake_server(record) as url:
            client = LLMClient(max_concurrency_per_endpoint=2)
            client.set_endpoints([Endpoint(url=url, model="m")])
            await asyncio.gather(*(client.chat(history, sampling=SAMPLING, seed=i) for i in range(8)))
            await client.close()

    asyncio.run(go())
    assert inflight[1] == 2
    assert seen[0]["model"] == "m" and seen[0]["max_tokens"] == 32 and "seed" in seen[0]
    sent_call = seen[0]["messages"][1]["tool_calls"][0]
    assert sent_call == {"id": "c1", "type": "function", "function": {"name": "noop", "arguments": "{}"}}


@pytest.mark.parametrize("cap", ["per_replica", "socket_budget"])
def test_requests_over_the_connection_caps_queue_on_kept_alive_connections(cap: str) -> None:
    """More requests than connections: the rest wait in the client, and the connections are reused
    (HTTP keep-alive) instead of one socket per request."""
    inflight, peers = [0, 0], set()

    async def record(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        inflight[0] += 1
        inflight[1] = max(inflight)
        await asyncio.sleep(0.02)
        inflight[0] -= 1
        return completion()

    async def go() -> None:
        async with fake_server(record) as url:
            client = LLMClient(max_connections_per_endpoint=3 if cap == "per_replica" else 0)
            if cap == "socket_budget":
                client._sockets = asyncio.Semaphore(3)  # as if the open-file limit allowed 3 sockets
            client.set_endpoints([Endpoint(url=url, model="m")])
            replies = await asyncio.gather(*(client.chat(ASK, sampling=SAMPLING, seed=i) for i in range(30)))
            await client.close()
        assert len(replies) == 30

    asyncio.run(go())
    assert inflight[1] == 3
    assert len(peers) <= 3


def test_requests_on_a_replica_that_left_are_retried_at_once_elsewhere() -> None:
    """A replica the registry expired (its node cut off: requests hang, nothing refuses them)."""
    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return completion("never")

    async def answers(request: web.Request) -> web.Response:
        return completion("from the survivor")

    async def go() -> tuple[list[ChatReply], float, dict]:
        async with fake_server(silent) as gone, fake_server(answers) as survivor:
            client = LLMClient(backoff_s=1.0)  # a plain retry would wait; a replica that left is retried at once
            client.set_endpoints([Endpoint(url=gone, model="m")])
            try:
                calls = [asyncio.ensure_future(client.chat(ASK, sampling=SAMPLING, seed=i)) for i in range(3)]
                await asyncio.sleep(0.3)
                assert client.outstanding()[gone] == 3
                t = time.monotonic()
                client.set_endpoints([Endpoint(url=survivor, model="m")])
                replies = await asyncio.gather(*calls)
                return replies, time.monotonic() - t, client.stats()
            finally:
                await client.close()

    replies, took, stats = asyncio.run(go())
    assert {r.content for r in replies} == {"from the survivor"} and took < 0.5, took
    gone = next(s for url, s in stats.items() if s.ok == 0)
    assert gone.requests == gone.errors == gone.retries == 3


def test_finish_reason_and_token_ids_reach_the_reply() -> None:
    """vLLM's return_token_ids: asked for only when llm.return_token_ids is on; kept in the reply."""
    seen: list[dict[str, Any]] = []

    async def vllm_like(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        ids = body.get("return_token_ids", False)
        return web.json_response({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "a b"}, "finish_reason": "length",
                         "token_ids": [7, 8] if ids else None}],
            "prompt_token_ids": [1, 2, 3] if ids else None,
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})

    async def go() -> list[ChatReply]:
        replies = []
        async with fake_server(vllm_like) as url:
            for flag in (False, True):
                client = LLMClient(return_token_ids=flag)
                client.set_endpoints([Endpoint(url=url, model="m")])
                replies.append(await client.chat(ASK, sampling=SAMPLING))
                await client.close()
        return replies

    plain, with_ids = asyncio.run(go())
    assert "return_token_ids" not in seen[0] and seen[1]["return_token_ids"] is True
    assert plain.finish_reason == with_ids.finish_reason == "length"
    assert (plain.prompt_token_ids, plain.token_ids) == ([], [])
    assert (with_ids.prompt_token_ids, with_ids.token_ids) == ([1, 2, 3], [7, 8])
