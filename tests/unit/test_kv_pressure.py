"""KV pressure from the replicas' /metrics (served by a real aiohttp server): a replica whose
preemptions rose since the last poll, or whose KV cache is nearly full, holds new tasks back
while others run; so do live conversations that fill the replicas' KV capacity (from
``vllm:cache_config_info``); the first task always gets in."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from slurmgen.llm.footprint import Footprints
from slurmgen.llm.pressure import KVPressure, parse
from slurmgen.protocol import KVUse, Orchestrator

CONFIG = 'vllm:cache_config_info{{model_name="m",block_size="16",num_gpu_blocks="{blocks}"}} 1.0\n'
TEXT = """# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{model_name="m"}} {usage}
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{{model_name="m"}} {preempted}
"""


def test_parse_reads_usage_preemptions_and_capacity() -> None:
    assert parse(TEXT.format(usage=0.5, preempted=3.0)) == (0.5, 3.0, 0)
    assert parse(CONFIG.format(blocks=1500) + TEXT.format(usage=0.5, preempted=3.0)) == (0.5, 3.0, 24_000)
    assert parse("") == (0.0, 0.0, 0)


async def _serve(state: dict[str, float]) -> tuple[web.AppRunner, str]:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=CONFIG.format(blocks=int(state.get("blocks", 0))) + TEXT.format(**state))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _scenario() -> list[bool]:
    state = {"usage": 0.2, "preempted": 0.0}
    runner, url = await _serve(state)
    gate = KVPressure([url], interval_s=0.05)
    seen = []
    async with aiohttp.ClientSession() as session:
        for usage, preempted in ((0.2, 0.0), (0.2, 2.0), (0.3, 2.0), (0.97, 2.0), (0.5, 2.0)):
            state.update(usage=usage, preempted=preempted)
            await gate.poll_once(session)
            seen.append(gate.under_pressure)
        state.update(preempted=5.0)
        await gate.poll_once(session)
        await asyncio.wait_for(gate.admit(0), 1.0)  # nothing live: a task gets in under pressure
        second = asyncio.create_task(gate.admit(1))
        await asyncio.sleep(0.2)
        seen.append(second.done())  # held back: pressure, and a task is live
        state.update(usage=0.2)
        for _ in range(5):  # calm polls: admitted one per interval, then at once
            await gate.poll_once(session)
        await asyncio.wait_for(second, 1.0)
    await runner.cleanup()
    return seen


def test_pressure_holds_new_tasks_back() -> None:
    assert asyncio.run(_scenario()) == [False, True, False, True, False, False]


async def _full_scenario() -> list[bool]:
    """Two replicas of 200 blocks (6,400 tokens); this process may fill 0.9 of half of them (2,880)."""
    state = {"usage": 0.2, "preempted": 0.0, "blocks": 200}
    (r1, url1), (r2, url2) = await _serve(state), await _serve(state)
    fp = Footprints()
    gate = KVPressure([url1, url2], interval_s=0.05, footprints=fp, fill=0.9)
    gate.share = 0.5
    seen = [gate.full(1)]  # not polled yet: capacity unknown
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            await gate.poll_once(session)
        fp.task_ended(Orchestrator(task_id="t0", row_id="t0", trial=0, seed=0, origin="p",
                                   kv={"agent": KVUse(1000, 0, 0)}))  # a live task is expected to hold 1,000
        seen.append(gate.full(1))  # one live and one more: 2,000
        seen.append(gate.full(2))  # two live and one more: 3,000
        waiting = asyncio.create_task(gate.admit(2))
        await asyncio.sleep(0.2)
        seen.append(waiting.done())  # held back while the live conversations fill the share
        await asyncio.wait_for(gate.admit(0), 1.0)  # nothing live: a task gets in anyway
        await asyncio.wait_for(gate.admit(1), 1.0)  # a task ended: room for one more
        waiting.cancel()
    await r1.cleanup()
    await r2.cleanup()
    return seen


def test_live_conversations_filling_the_kv_capacity_hold_new_tasks_back() -> None:
    assert asyncio.run(_full_scenario()) == [True, False, True, False]
