"""Client-side limits of one LLM pool: requests per minute, tokens per minute, requests in flight.

A ``Limiter`` belongs to one ``LLMClient`` (one pool in one process). Every attempt (a retry
is an attempt) asks it for a ``Permit`` before it is sent and gives the permit back when it
ends. A permit needs:

- a slot, when ``max_concurrency`` is set (held while the attempt is in flight, not while
  it backs off);
- one request from the requests-per-minute bucket, when ``rpm`` is set;
- the attempt's token estimate from the tokens-per-minute bucket, when ``tpm`` is set
  (``estimate_tokens``: prompt bytes / 4 + ``max_tokens``); the permit corrects the bucket
  with the reply's ``usage`` once the reply is in;
- the end of the pool's pause: a 429 with ``Retry-After`` pauses every attempt of the pool
  (``pause``) until that time has passed, not only the attempt that got it.

Buckets start full and hold one second of their rate (``BURST_S``): a provider's per-minute
quota is usually enforced over shorter windows, so a pool never fires a minute's worth at
once. An attempt whose cost exceeds what a bucket holds waits until the bucket is full and
leaves it in debt, so the rate holds over time. Waiters are served in arrival order.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import msgspec

BURST_S = 1.0  # a bucket holds this many seconds of its rate
_EPS = 1e-9
_BYTES_PER_TOKEN = 4  # a rough, deliberately high estimate of prompt tokens from request bytes

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class LimiterStats(msgspec.Struct, kw_only=True):
    """What the limiter of one pool did in this process."""

    waits: int = 0  # attempts that had to wait (for a slot, the buckets or a pause)
    waited_s: float = 0.0  # seconds those attempts waited, summed
    pauses: int = 0  # 429 replies whose Retry-After paused the pool


class TokenBucket:
    """``rate`` units per second, holding at most ``capacity``; starts full.

    ``delay(cost)`` says how long until ``cost`` may be taken (capped at ``capacity``, so
    that a cost larger than the bucket waits for a full bucket, then leaves it in debt).
    """

    def __init__(self, rate: float, capacity: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"a token bucket needs a positive rate and capacity, got {rate} and {capacity}")
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self._clock = clock
        self._stamp = clock()

    @classmethod
    def per_minute(cls, per_minute: float, clock: Clock = time.monotonic) -> TokenBucket:
        rate = per_minute / 60.0
        return cls(rate, max(1.0, rate * BURST_S), clock)

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self, cost: float) -> float:
        self._refill()
        missing = min(cost, self.capacity) - self.level
        return missing / self.rate if missing > _EPS else 0.0

    def take(self, cost: float) -> None:
        self._refill()
        self.level -= cost

    def give(self, amount: float) -> None:
        """Put back (or, negative, take more): a correction once the real cost is known."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


def estimate_tokens(body: bytes, max_tokens: int) -> int:
    """An attempt's tokens before it is sent: its prompt from the request's size, plus all it may write."""
    return len(body) // _BYTES_PER_TOKEN + max_tokens


def share(total: float, parts: int) -> float:
    """One process's part of a per-run limit (0 stays 0 = unlimited)."""
    return total / max(1, parts)


class Permit:
    """One attempt's admission; ``done`` gives back its slot and corrects the token estimate."""

    __slots__ = ("_done", "_estimate", "_limiter")

    def __init__(self, limiter: Limiter, estimate: int) -> None:
        self._limiter = limiter
        self._estimate = estimate
        self._done = False

    def done(self, used_tokens: int = 0) -> None:
        """``used_tokens``: the reply's prompt + completion tokens; 0 = unknown (the estimate stands)."""
        if self._done:
            return
        self._done = True
        self._limiter._finish(self._estimate, used_tokens)


class Limiter:
    """The pool's rpm / tpm buckets, its in-flight slots and its pause; see the module docstring."""

    def __init__(self, rpm: float = 0, tpm: float = 0, max_concurrency: int = 0, *,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.requests = TokenBucket.per_minute(rpm, clock) if rpm > 0 else None
        self.tokens = TokenBucket.per_minute(tpm, clock) if tpm > 0 else None
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency > 0 else None
        self._turn = asyncio.Lock()  # FIFO: waiters take their budget in arrival order
        self._paused_until = 0.0
        self._clock = clock
        self._sleep = sleep
        self.stats = LimiterStats()

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """A 429 asked to wait ``seconds``: no attempt of the pool starts before then."""
        if seconds <= 0:
            return
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self.stats.pauses += 1

    async def acquire(self, estimate: int) -> Permit:
        """Wait until an attempt of ``estimate`` tokens may be sent."""
        start = self._clock()
        waited = False
        if self._slots is not None:
            waited = self._slots.locked()
            await self._slots.acquire()
        try:
            if self.requests is not None or self.tokens is not None or self._paused_until > start:
                waited = await self._admit(estimate) or waited
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        if waited:
            self.stats.waits += 1
            self.stats.waited_s += self._clock() - start
        return Permit(self, estimate)

    async def _admit(self, estimate: int) -> bool:
        """Take the attempt's budget once the pause is over and the buckets hold it; True if it waited."""
        waited = self._turn.locked()
        async with self._turn:
            while (wait := self._wait(estimate)) > 0:
                waited = True
                await self._sleep(wait)
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None:
                self.tokens.take(estimate)
        return waited

    def _wait(self, estimate: int) -> float:
        wait = self._paused_until - self._clock()
        if self.requests is not None:
            wait = max(wait, self.requests.delay(1))
        if self.tokens is not None:
            wait = max(wait, self.tokens.delay(estimate))
        return wait if wait > _EPS else 0.0

    def _finish(self, estimate: int, used_tokens: int) -> None:
        if self._slots is not None:
            self._slots.release()
        if self.tokens is not None and used_tokens > 0:
            self.tokens.give(estimate - used_tokens)
