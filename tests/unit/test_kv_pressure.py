"""KV pressure from the replicas' /metrics (served by a real aiohttp server): a replica whose
preemptions rose since the last poll, or whose KV cache is nearly full, holds new tasks back
while others run; the first task always gets in."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from slurmgen.llm.pressure import KVPressure, parse

TEXT = """# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{model_name="m"}} {usage}
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{{model_name="m"}} {preempted}
"""


def test_parse_reads_usage_and_preemptions() -> None:
    assert parse(TEXT.format(usage=0.5, preempted=3.0)) == (0.5, 3.0)
    assert parse("") == (0.0, 0.0)


async def _scenario() -> list[bool]:
    state = {"usage": 0.2, "preempted": 0.0}

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=TEXT.format(**state))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
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
