"""KV-cache pressure of a pool's replicas, read from their /metrics, to admit new tasks slowly.

vLLM (and the simulator) report ``vllm:kv_cache_usage_perc`` (0..1),
``vllm:num_preemptions_total`` and ``vllm:cache_config_info`` (its ``num_gpu_blocks`` and
``block_size``: the replica's KV capacity). ``admit()`` holds a new task back (never the
first when no task is live: there is always progress) while

- a replica is under pressure: its cache nearly full (usage at or above ``usage_high``) or
  it preempted requests since the previous poll (every ``interval_s``); once the pressure
  has passed new tasks come in one per poll;
- or the live tasks' conversations (``footprints``: slurmgen.llm.footprint) would hold more
  than ``fill`` of this process's ``share`` of the replicas' KV capacity with one more task
  (one more would evict prefixes that tasks waiting for their next turn will need again).
  Until a task has ended (no footprint to expect yet) new tasks come in one per poll (a
  slow start), and none before the first poll has read the capacity.

The tasks already running finish instead of being thrashed by newcomers whose prompts evict
their KV. Admitted tasks are never held back. A peer's origin awaits ``admit(tasks in
flight)`` before issuing each task when a pool it uses runs ``llm.scheduling_policy=priority``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import NamedTuple

import aiohttp
import msgspec

from slurmgen.llm.footprint import Footprints

_SAMPLE = re.compile(r"^(vllm:kv_cache_usage_perc|vllm:num_preemptions_total)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.M)
_CONFIG = re.compile(r"^vllm:cache_config_info\{([^}]*)\}", re.M)
_LABEL = re.compile(r'(num_gpu_blocks|block_size)="(\d+)"')


class Reading(NamedTuple):
    usage: float  # KV cache usage, 0..1
    preempted: float  # preemptions so far
    capacity: int  # KV cache tokens (num_gpu_blocks x block_size; 0 = not reported)


def parse(text: str) -> Reading:
    """What one replica's /metrics text says of its KV cache."""
    usage = preempted = 0.0
    for name, value in _SAMPLE.findall(text):
        if name == "vllm:kv_cache_usage_perc":
            usage = max(usage, float(value))
        else:
            preempted += float(value)
    config = _CONFIG.search(text)
    labels = dict(_LABEL.findall(config.group(1))) if config else {}
    return Reading(usage, preempted, int(labels.get("num_gpu_blocks", 0)) * int(labels.get("block_size", 0)))


class KVAdmission(msgspec.Struct, kw_only=True):
    """The KV admission gate of a peer under llm.scheduling_policy=priority (slurmgen.llm.pressure)."""

    held_s: float = 0.0  # seconds new tasks waited, summed
    capacity_tokens: int = 0  # KV of the replicas (num_gpu_blocks x block_size, summed)
    share: float = 1.0  # of it this peer's tasks may fill
    expected_tokens: int = 0  # a live task's expected footprint (mean of the tasks that ended)
    tasks_ended: int = 0  # tasks whose footprint was counted


class KVPressure:
    """Polls the replicas' /metrics; see the module docstring."""

    def __init__(self, urls: list[str], *, usage_high: float = 0.95, interval_s: float = 0.5,
                 footprints: Footprints | None = None, fill: float = 0.9) -> None:
        self.urls = list(urls)
        self.usage_high = usage_high
        self.interval_s = interval_s
        self.footprints = footprints  # the live tasks' conversation sizes (None: not counted)
        self.fill = fill
        self.share = 1.0  # of the replicas' KV this process's tasks may fill (1 / peers using them)
        self.capacity: dict[str, int] = {}  # KV cache tokens of each replica
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
                    reading = parse(await resp.text())
                rose = reading.preempted > self._preempted.get(url, reading.preempted)
                self._preempted[url] = reading.preempted
                self.capacity[url] = reading.capacity
                pressured = pressured or rose or reading.usage >= self.usage_high
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
        while live and self._hold(live):
            await asyncio.sleep(self.interval_s / 4)
        self.held_s += time.monotonic() - t0

    def _hold(self, live: int) -> bool:
        """Whether a new task must wait now; a paced one (one per poll interval) takes its turn."""
        if self.under_pressure or self.full(live):
            return True
        fp = self.footprints
        slow_start = fp is not None and not fp.expected and self.capacity_tokens() > 0
        if not slow_start and self._calm_polls >= 4:
            return False
        now = time.monotonic()
        if now < self._next_admit:
            return True
        self._next_admit = now + self.interval_s
        return False

    def capacity_tokens(self) -> int:
        return sum(self.capacity.get(url, 0) for url in self.urls)

    def full(self, live: int) -> bool:
        """Whether one more task's conversations would overfill this process's share of the replicas' KV."""
        fp = self.footprints
        if fp is None:
            return False
        if not self.capacity:
            return True  # not polled yet
        capacity = self.capacity_tokens()
        return bool(capacity and fp.expected and fp.resident(live + 1) > self.fill * self.share * capacity)

    def stats(self) -> KVAdmission:
        fp = self.footprints
        return KVAdmission(held_s=round(self.held_s, 3), capacity_tokens=self.capacity_tokens(), share=self.share,
                           expected_tokens=int(fp.expected) if fp else 0, tasks_ended=fp.ended if fp else 0)
