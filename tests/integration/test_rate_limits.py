"""A hosted pool's limits against a real rate-limited simulator process (``--rate-limit``).

No timing assertions: counts and orderings are asserted, timings are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from slurmgen.errors import LLMError
from slurmgen.llm.client import LLMClient
from slurmgen.llm.ratelimit import Limiter, Permit
from slurmgen.llm.types import ChatMessage, ChatReply, Endpoint, Sampling
from tests.simproc import SimProc, start_sim, stop_sim

MODEL = "sim-test"
ASK = [ChatMessage(role="user", content="Say something.")]
SIM_RPM = 600  # the simulator answers 429 beyond 10 requests per second (holding 10)


class RecordingLimiter(Limiter):
    """The real limiter, noting when each attempt was let through and each pause it was given."""

    def __init__(self, **kw: float) -> None:
        super().__init__(**kw)
        self.granted: list[float] = []
        self.paused: list[tuple[float, float]] = []  # (429 received, pool paused until)

    async def acquire(self, estimate: int) -> Permit:
        permit = await super().acquire(estimate)
        self.granted.append(time.monotonic())
        return permit

    def pause(self, seconds: float) -> None:
        received = time.monotonic()
        super().pause(seconds)
        self.paused.append((received, self.paused_until))


@pytest.fixture(scope="module")
def limited() -> Iterator[SimProc]:
    sim = start_sim(model=MODEL, time_scale=0, rate_limit=SIM_RPM, script="tests.simproc:fill_max_tokens")
    yield sim
    stop_sim(sim)


def sim_counter(sim: SimProc, name: str) -> int:
    """A counter of the simulator's /metrics, summed over its labels."""
    text = urllib.request.urlopen(f"{sim.url}/metrics", timeout=10).read().decode()
    return sum(int(float(v)) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def raw_chat(sim: SimProc) -> tuple[int, dict[str, str], dict]:
    data = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()
    req = urllib.request.Request(f"{sim.url}/v1/chat/completions", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def drive(sim: SimProc, limiter: RecordingLimiter, n: int, max_retries: int = 4) -> tuple[list[ChatReply], LLMClient]:
    """``n`` concurrent requests through one client; prints how long they took."""
    async def main() -> tuple[list[ChatReply], LLMClient]:
        client = LLMClient(backoff_s=0.02, max_retries=max_retries, limiter=limiter)
        client.set_endpoints([Endpoint(url=sim.url, model=MODEL)])
        try:
            calls = (client.chat(ASK, sampling=Sampling(max_tokens=8), seed=i) for i in range(n))
            return list(await asyncio.gather(*calls)), client
        finally:
            await client.close()

    time.sleep(1.1)  # the simulator's bucket refills between tests
    t0 = time.monotonic()
    replies, client = asyncio.run(main())
    rpm = f"{limiter.requests.rate * 60:g} rpm" if limiter.requests else "no rpm limit"
    print(f"\n{n} requests, client {rpm}, server {SIM_RPM} rpm: {time.monotonic() - t0:.2f} s, "
          f"{client.stats()[sim.url]}, {limiter.stats}")
    return replies, client


def test_a_client_under_the_servers_rate_never_gets_429(limited: SimProc) -> None:
    before = sim_counter(limited, "slurmgen_sim:rate_limited_total")
    limiter = RecordingLimiter(rpm=SIM_RPM * 0.4)
    replies, client = drive(limited, limiter, 16)
    stats = client.stats()[limited.url]
    assert len(replies) == 16 and stats.ok == 16
    assert stats.rate_limited == 0 and stats.requests == 16
    assert sim_counter(limited, "slurmgen_sim:rate_limited_total") == before
    assert limiter.stats.waits > 0 and limiter.paused == []  # the client paced itself


@pytest.mark.parametrize("client_rpm", [0, SIM_RPM * 5])  # unlimited, and above the server's rate
def test_a_client_over_the_servers_rate_honours_retry_after_and_completes(limited: SimProc, client_rpm: float) -> None:
    before = sim_counter(limited, "slurmgen_sim:rate_limited_total")
    limiter = RecordingLimiter(rpm=client_rpm)
    replies, client = drive(limited, limiter, 40, max_retries=10)
    stats = client.stats()[limited.url]
    seen_by_sim = sim_counter(limited, "slurmgen_sim:rate_limited_total") - before
    assert len(replies) == 40 and stats.ok == 40
    assert stats.rate_limited > 0 and stats.rate_limited == seen_by_sim  # both sides saw the same 429s
    assert stats.requests == 40 + stats.rate_limited
    assert len(limiter.paused) == stats.rate_limited  # every 429 carried a Retry-After that paused the pool
    for received, until in limiter.paused:
        assert until >= received + 1.0  # the simulator's Retry-After is whole seconds
        early = [g for g in limiter.granted if received <= g < until]
        assert early == [], f"attempts let through during the pause {received:.3f}..{until:.3f}: {early}"


def test_429_on_every_attempt_raises_rate_limited_and_pauses_the_pool() -> None:
    sim = start_sim(model=MODEL, time_scale=0, rate_limit=6, rate_burst=1)  # one request per 10 s
    try:

        async def main() -> tuple[LLMError, float, float]:
            client = LLMClient(backoff_s=0.01, max_retries=0)
            client.set_endpoints([Endpoint(url=sim.url, model=MODEL)])
            try:
                await client.chat(ASK, sampling=Sampling(max_tokens=4))
                with pytest.raises(LLMError) as info:
                    await client.chat(ASK, sampling=Sampling(max_tokens=4))
                return info.value, client.limiter.paused_until, time.monotonic()
            finally:
                await client.close()

        err, paused_until, now = asyncio.run(main())
        assert err.kind == "rate_limited" and "HTTP 429" in str(err) and "Rate limit reached" in str(err)
        assert paused_until > now + 5  # Retry-After: 10 (whole seconds until the next request)
        status, headers, body = raw_chat(sim)  # what any OpenAI client sees
        assert status == 429 and 5 <= int(headers["Retry-After"]) <= 10
        assert body["error"]["type"] == "RateLimitError" and body["error"]["code"] == 429
    finally:
        stop_sim(sim)
