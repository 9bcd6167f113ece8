"""The simulator as a real process over HTTP: OpenAI/vLLM API, metrics, batching, shutdown."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgspec
import pytest

from slurmgen.sim.content import count_tokens
from tests.simproc import SimProc, start_sim, stop_sim

MODEL = "sim-test"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProc]:
    proc = start_sim(model=MODEL, profile="a100-llama3.1-8b", time_scale=20, max_model_len=4096)
    yield proc
    stop_sim(proc)


def chat_body(content: str = "Tell me about the sea.", **extra: Any) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


async def _call(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        data = raw if raw is not None else (msgspec.json.encode(body) if body is not None else None)
        async with session.request(method, url, data=data, headers={"Content-Type": "application/json"}) as resp:
            return resp.status, await resp.read()


def call(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    status, data = asyncio.run(_call(method, url, body, raw))
    return status, data


def chat(sim: SimProc, **body: Any) -> dict:
    status, data = call("POST", sim.url + "/v1/chat/completions", body)
    assert status == 200, data
    return msgspec.json.decode(data)


def sse_events(data: bytes) -> list[Any]:
    events = []
    for block in data.decode().split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            payload = block[len("data: ") :]
            events.append(payload if payload == "[DONE]" else msgspec.json.decode(payload))
    return events


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_and_models(sim: SimProc) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.url)
    assert call("GET", sim.url + "/health")[0] == 200
    status, data = call("GET", sim.url + "/v1/models")
    assert status == 200
    models = msgspec.json.decode(data)
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert models["data"][0]["max_model_len"] == 4096


def test_chat_non_streaming_with_usage(sim: SimProc) -> None:
    reply = chat(sim, **chat_body(seed=5, max_tokens=1000))
    choice = reply["choices"][0]
    content = choice["message"]["content"]
    assert reply["object"] == "chat.completion" and reply["model"] == MODEL
    assert choice["finish_reason"] == "stop" and content
    usage = reply["usage"]
    assert usage["completion_tokens"] == count_tokens(content)
    assert usage["prompt_tokens"] >= count_tokens("Tell me about the sea.")
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    again = chat(sim, **chat_body(seed=5, max_tokens=1000))
    other = chat(sim, **chat_body(seed=6, max_tokens=1000))
    assert again["choices"][0]["message"]["content"] == content  # same seed + messages, same reply
    assert other["choices"][0]["message"]["content"] != content


def test_max_tokens_truncates_with_finish_length(sim: SimProc) -> None:
    reply = chat(sim, **chat_body(seed=5, max_tokens=5))
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 5
    assert count_tokens(reply["choices"][0]["message"]["content"]) == 5


def test_streaming_with_usage_chunk(sim: SimProc) -> None:
    body = chat_body(seed=9, max_tokens=1000, stream=True, stream_options={"include_usage": True})
    status, data = call("POST", sim.url + "/v1/chat/completions", body)
    assert status == 200
    events = sse_events(data)
    assert events[-1] == "[DONE]"
    usage_chunk, chunks = events[-2], events[:-2]
    assert usage_chunk["choices"] == [] and usage_chunk["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert len(chunks) > 3  # tokens arrive as they are produced, not in one piece
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["usage"]["completion_tokens"] == count_tokens(text)
    plain = chat(sim, **chat_body(seed=9, max_tokens=1000))
    assert plain["choices"][0]["message"]["content"] == text


def test_tool_choice_required_returns_tool_calls(sim: SimProc) -> None:
    reply = chat(sim, **chat_body("Weather in Oslo?", tools=[WEATHER], tool_choice="required"))
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call_,) = choice["message"]["tool_calls"]
    assert call_["type"] == "function" and call_["id"] and call_["function"]["name"] == "get_weather"
    args = msgspec.json.decode(call_["function"]["arguments"])
    assert set(args) >= {"city", "unit"} and args["unit"] in ("c", "f") and isinstance(args["city"], str)


def test_tool_calls_stream_as_deltas(sim: SimProc) -> None:
    body = chat_body("Weather in Oslo?", tools=[WEATHER], tool_choice="required", stream=True)
    events = sse_events(call("POST", sim.url + "/v1/chat/completions", body)[1])
    deltas = [d for e in events[:-1] for d in e["choices"][0]["delta"].get("tool_calls", [])]
    assert deltas[0]["function"]["name"] == "get_weather" and deltas[0]["id"]
    args = "".join(d["function"].get("arguments", "") for d in deltas)
    assert set(msgspec.json.decode(args)) >= {"city", "unit"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_json_schema_response_format(sim: SimProc) -> None:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}, "reason": {"type": "string"}},
        "required": ["score", "reason"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "grade", "schema": schema}}
    for seed in range(3):
        reply = chat(sim, **chat_body("Grade this.", response_format=fmt, seed=seed))
        value = msgspec.json.decode(reply["choices"][0]["message"]["content"])
        assert 1 <= value["score"] <= 10 and isinstance(value["reason"], str)


def test_metrics_use_vllm_names_and_count(sim: SimProc) -> None:
    before = call("GET", sim.url + "/metrics")[1].decode()
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:num_preemptions_total",
        "vllm:e2e_request_latency_seconds_count",
        "vllm:time_to_first_token_seconds_count",
    ):
        assert name in before
    reply = chat(sim, **chat_body("count me", max_tokens=50))
    after = call("GET", sim.url + "/metrics")[1].decode()
    assert metric(after, "vllm:request_success_total") == metric(before, "vllm:request_success_total") + 1
    gen = metric(after, "vllm:generation_tokens_total") - metric(before, "vllm:generation_tokens_total")
    assert gen == reply["usage"]["completion_tokens"]
    prompt = metric(after, "vllm:prompt_tokens_total") - metric(before, "vllm:prompt_tokens_total")
    assert prompt == reply["usage"]["prompt_tokens"]
    e2e = "vllm:e2e_request_latency_seconds_count"
    assert metric(after, e2e) == metric(before, e2e) + 1


def test_bad_requests_get_openai_errors(sim: SimProc) -> None:
    url = sim.url + "/v1/chat/completions"
    for raw in (b"{not json", b'{"model": "sim-test"}', b'{"messages": []}', b'{"messages": "hi"}'):
        status, data = call("POST", url, raw=raw)
        assert status == 400, raw
        assert msgspec.json.decode(data)["error"]["message"]
    status, data = call("POST", url, chat_body("word " * 5000))
    assert status == 400
    assert "maximum context length" in msgspec.json.decode(data)["error"]["message"]
    status, _ = call("POST", url, {**chat_body(), "model": "other-model"})
    assert status == 404


def test_continuous_batching_serves_concurrent_requests_together() -> None:
    """N concurrent requests finish in far less than N × one request (semantics, not speed)."""
    n = 16
    sim = start_sim(model=MODEL, time_scale=10, script="tests.simproc:fill_max_tokens")
    try:
        body = chat_body(max_tokens=64)

        async def measure(concurrency: int) -> float:
            async with aiohttp.ClientSession() as session:

                async def one(i: int) -> None:
                    payload = msgspec.json.encode({**body, "seed": i})
                    async with session.post(sim.url + "/v1/chat/completions", data=payload) as resp:
                        assert resp.status == 200
                        assert (await resp.json())["usage"]["completion_tokens"] == 64

                await one(-1)  # warm up the connection
                start = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(concurrency)))
                return time.perf_counter() - start

        single = asyncio.run(measure(1))
        together = asyncio.run(measure(n))
        assert single > 64 * 0.011 / 10 * 0.8  # the modelled time is really slept
        assert together < single * n / 2
    finally:
        stop_sim(sim)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_cleanly(sig: int) -> None:
    sim = start_sim(model=MODEL, time_scale=20)
    assert chat(sim, **chat_body(max_tokens=3))["usage"]["completion_tokens"] == 3
    assert stop_sim(sim, sig=sig) == 0


def test_client_disconnect_aborts_the_request() -> None:
    sim = start_sim(model=MODEL, time_scale=1, script="tests.simproc:fill_max_tokens")
    try:

        async def go() -> str:
            body = msgspec.json.encode(chat_body(max_tokens=2000, stream=True))
            async with aiohttp.ClientSession() as session:
                async with session.post(sim.url + "/v1/chat/completions", data=body) as resp:
                    await resp.content.readline()  # the request is running
                    text = await (await session.get(sim.url + "/metrics")).text()
                    assert metric(text, "vllm:num_requests_running") + metric(text, "vllm:num_requests_waiting") == 1
                # leaving the block closes the connection mid-stream
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    text = await (await session.get(sim.url + "/metrics")).text()
                    if metric(text, "vllm:num_requests_running") == 0:
                        return text
            raise AssertionError("the request kept running after its client left")

        text = asyncio.run(go())
        assert 'finished_reason="abort"} 1' in text
        assert metric(text, "vllm:generation_tokens_total") < 2000
    finally:
        stop_sim(sim)
