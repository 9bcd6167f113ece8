"""KV-cache pressure of a pool's replicas, read from their /metrics, to admit new tasks slowly.

vLLM (and the simulator) report ``vllm:kv_cache_usage_perc`` (0..1) and
``vllm:num_preemptions_total``. A replica is under pressure when its cache is nearly full
(usage at or above ``usage_high``) or it preempted requests since the previous poll
(every ``interval_s``). While any replica is, ``admit()`` holds new tasks back (all of them
but the first when no task is live: there is always progress), and once the pressure
has passed lets them in one per poll: the tasks already running finish instead of being
thrashed by newcomers whose prompts evict their KV. Admitted tasks are never held back.
A peer's origin awaits ``admit(tasks in flight)`` before issuing each task when a pool it
uses runs ``llm.scheduling_policy=priority``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import aiohttp

_SAMPLE = re.compile(r"^(vllm:kv_cache_usage_perc|vllm:num_preemptions_total)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.M)


def parse(text: str) -> tuple[float, float]:
    """(KV cache usage 0..1, preemptions so far) of one replica's /metrics text."""
    usage = preempted = 0.0
    for name, value in _SAMPLE.findall(text):
        if name == "vllm:kv_cache_usage_perc":
            usage = max(usage, float(value))
        else:
            preempted += float(value)
    return usage, preempted


class KVPressure:
    """Polls the replicas' /metrics; see the module docstring."""

    def __init__(self, urls: list[str], *, usage_high: float = 0.95, interval_s: float = 0.5) -> None:
        self.urls = list(urls)
        self.usage_high = usage_high
        self.interval_s = interval_s
        self.under_pressure = False
        self.held_s = 0.0  # seconds new tasks waited in admit(), summed
        self._calm_polls = 0  # polls since the last one under pressure
        self._preempted: dict[str, float] = {}
        self._next_admit = 0.0
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        pressured = False
        for url in self.urls:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                async with session.get(url.rstrip("/") + "/metrics") as resp:
                    usage, preempted = parse(await resp.text())
                rose = preempted > self._preempted.get(url, preempted)
                self._preempted[url] = preempted
                pressured = pressured or rose or usage >= self.usage_high
        self.under_pressure = pressured
        self._calm_polls = 0 if pressured else self._calm_polls + 1

    async def run(self) -> None:
        """Poll every ``interval_s`` until cancelled."""
        timeout = aiohttp.ClientTimeout(total=max(1.0, 4 * self.interval_s))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self.poll_once(session)
                await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="kv-pressure")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def admit(self, live: int) -> None:
        """Return when a new task may start, ``live`` tasks being in flight (see the module docstring)."""
        t0 = time.monotonic()
        while live and (self.under_pressure or self._recovering()):
            await asyncio.sleep(self.interval_s / 4)
        self.held_s += time.monotonic() - t0

    def _recovering(self) -> bool:
        """Right after pressure (the last few polls): one task per poll interval; False = admit now."""
        if self._calm_polls >= 4:
            return False
        now = time.monotonic()
        if now < self._next_admit:
            return True
        self._next_admit = now + self.interval_s
        return False

