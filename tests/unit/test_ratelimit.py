"""The pool limiter's token buckets, slots and pauses, on a fake clock (no real time passes)."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from slurmgen.config.types import LLMConf
from slurmgen.llm.client import LLMClient, _retry_after
from slurmgen.llm.ratelimit import Limiter, TokenBucket, estimate_tokens, share


class FakeClock:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # let the others run first, as they would during a real sleep
        self.now += seconds


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, capacity=4.0, clock=clock)
    for _ in range(4):
        assert bucket.delay(1) == 0.0
        bucket.take(1)
    assert bucket.delay(1) == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.delay(1) == 0.0
    clock.now += 60.0  # never more than its capacity
    bucket.take(4)
    assert bucket.delay(1) == pytest.approx(0.5)


def test_a_cost_over_the_capacity_waits_for_a_full_bucket_then_leaves_it_in_debt() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=10.0, clock=clock)
    bucket.take(5)
    assert bucket.delay(25) == pytest.approx(0.5)  # until full, not until 25 are there
    clock.now += 0.5
    bucket.take(25)
    assert bucket.level == pytest.approx(-15.0)
    assert bucket.delay(1) == pytest.approx(1.6)  # the debt is paid at the rate: 25 tokens took 2.5 s


def test_a_correction_gives_back_or_takes_more_never_over_the_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, capacity=10.0, clock=clock)
    bucket.take(8)
    bucket.give(3)  # the reply used 3 fewer than estimated
    assert bucket.level == pytest.approx(5.0)
    bucket.give(-7)  # or 7 more
    assert bucket.level == pytest.approx(-2.0)
    bucket.give(100)
    assert bucket.level == pytest.approx(10.0)


def test_per_minute_holds_one_second_of_its_rate_and_at_least_one() -> None:
    assert TokenBucket.per_minute(600).capacity == pytest.approx(10.0)
    assert TokenBucket.per_minute(6).capacity == 1.0
    assert TokenBucket.per_minute(6).rate == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TokenBucket(rate=0.0, capacity=1.0)


def test_estimate_and_share() -> None:
    assert estimate_tokens(b"x" * 400, 64) == 164
    assert share(600, 4) == 150.0 and share(0, 4) == 0.0 and share(10, 0) == 10.0


def grant_times(limiter: Limiter, clock: FakeClock, n: int, estimate: int = 1) -> list[float]:
    async def one() -> float:
        permit = await limiter.acquire(estimate)
        permit.done()
        return clock.now

    async def main() -> list[float]:
        return list(await asyncio.gather(*(one() for _ in range(n))))

    return asyncio.run(main())


def test_rpm_spaces_requests_after_the_burst_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = Limiter(rpm=120, clock=clock, sleep=clock.sleep)  # 2 per second, holding 2
    times = [t - 100.0 for t in grant_times(limiter, clock, 6)]
    assert times == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0])
    assert limiter.stats.waits == 4 and limiter.stats.waited_s == pytest.approx(0.5 + 1.0 + 1.5 + 2.0)


def test_tpm_charges_the_estimate_and_is_corrected_by_the_usage() -> None:
    clock = FakeClock()
    limiter = Limiter(tpm=6000, clock=clock, sleep=clock.sleep)  # 100 tokens per second, holding 100

    async def main() -> list[float]:
        first = await limiter.acquire(100)
        first.done(used_tokens=20)  # estimated 100, used 20: 80 come back
        second = await limiter.acquire(80)  # there now, no wait
        t_second = clock.now
        second.done()  # no usage known: the estimate stands
        third = await limiter.acquire(50)
        third.done()
        return [t_second, clock.now]

    t_second, t_third = asyncio.run(main())
    assert t_second == 100.0 and t_third == pytest.approx(100.5)


def test_max_concurrency_bounds_permits_held_at_once() -> None:
    clock = FakeClock()
    limiter = Limiter(max_concurrency=2, clock=clock, sleep=clock.sleep)
    held, most = [0], [0]

    async def one() -> None:
        permit = await limiter.acquire(1)
        held[0] += 1
        most[0] = max(most[0], held[0])
        await clock.sleep(1.0)
        held[0] -= 1
        permit.done()
        permit.done()  # a second done() is ignored (the slot is not released twice)

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(6)))

    asyncio.run(main())
    assert most[0] == 2 and limiter.stats.waits == 4


def test_a_pause_holds_every_attempt_of_the_pool_until_it_passed() -> None:
    clock = FakeClock()
    limiter = Limiter(clock=clock, sleep=clock.sleep)  # no rate limits at all: only the pause
    limiter.pause(2.0)
    limiter.pause(0.5)  # a shorter pause never shortens the current one
    assert limiter.paused_until == 102.0
    times = grant_times(limiter, clock, 3)
    assert min(times) >= 102.0
    assert limiter.stats.pauses == 2 and limiter.stats.waits >= 1


def test_an_unlimited_limiter_never_waits() -> None:
    clock = FakeClock()
    limiter = Limiter(clock=clock, sleep=clock.sleep)
    assert grant_times(limiter, clock, 50) == [100.0] * 50
    assert limiter.stats.waits == 0 and limiter.stats.waited_s == 0.0


def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    async def main() -> None:
        limiter = Limiter(max_concurrency=1)
        limiter.pause(30.0)
        waiter = asyncio.ensure_future(limiter.acquire(1))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not limiter._slots.locked()  # type: ignore[union-attr]

    asyncio.run(main())


def test_from_conf_gives_each_peer_an_even_share_of_the_pool() -> None:
    client = LLMClient.from_conf(LLMConf(rpm=600, tpm=120_000, max_concurrency=9), peers=4)
    limiter = client.limiter
    assert limiter.requests is not None and limiter.requests.rate * 60 == pytest.approx(150)
    assert limiter.tokens is not None and limiter.tokens.rate * 60 == pytest.approx(30_000)
    assert limiter.max_concurrency == 2  # rounded down: the run never holds more than 9
    unlimited = LLMClient.from_conf(LLMConf(), peers=4).limiter
    assert unlimited.requests is None and unlimited.tokens is None and unlimited.max_concurrency == 0


def test_retry_after_in_seconds_milliseconds_or_as_a_date() -> None:
    assert _retry_after({"Retry-After": "2"}) == 2.0
    assert _retry_after({"retry-after-ms": "250", "Retry-After": "1"}) == 0.25  # the finer one wins
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < _retry_after({"Retry-After": soon}) <= 30
    assert _retry_after({"Retry-After": "3600"}) == 60.0  # capped
    assert _retry_after({"Retry-After": "soon"}) == 0.0 and _retry_after({}) == 0.0
    assert _retry_after({"Retry-After": "-5"}) == 0.0 and _retry_after({"Retry-After": "nan"}) == 0.0
