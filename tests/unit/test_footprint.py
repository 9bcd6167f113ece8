"""A task's KV footprint: each conversation's size after its last reply, recorded in the task's
message by the client (whichever peer ran the hop); at the origin, the mean footprint of the
tasks that ended, a prefix several conversations share (a system prompt) counted once."""

from __future__ import annotations

import asyncio

from aiohttp import web

from slurmgen.llm.client import LLMClient
from slurmgen.llm.footprint import CURRENT_TASK, Footprints, kv_use
from slurmgen.llm.types import ChatMessage, Endpoint, Sampling
from slurmgen.protocol import KVUse, Orchestrator

SYSTEM = ChatMessage(role="system", content="You are a careful agent. " * 40)


def task(task_id: str, **kv: KVUse) -> Orchestrator:
    return Orchestrator(task_id=task_id, row_id=task_id, trial=0, seed=0, origin="p", kv=kv)


def test_the_shared_part_is_the_tools_and_first_message_by_bytes() -> None:
    a = kv_use([SYSTEM, ChatMessage(role="user", content="first task, question one " * 10)], None, 1000)
    b = kv_use([SYSTEM, ChatMessage(role="user", content="second task " * 10)], None, 800)
    assert a.shared_id == b.shared_id and 500 < a.shared < 1000 and b.shared / 800 > a.shared / 1000
    assert kv_use([SYSTEM], [{"type": "function"}], 900).shared_id != a.shared_id  # other tools: another prefix
    assert kv_use([], None, 5) == KVUse(5, 0, 0)


def test_live_tasks_count_at_the_mean_footprint_and_shared_prefixes_once() -> None:
    fp = Footprints()
    assert fp.resident(10) == 0 and not fp.expected
    fp.task_ended(task("t1", agent=KVUse(1500, 500, 7), user=KVUse(300, 100, 8)))  # private 1,000 + 200
    fp.task_ended(task("t2", agent=KVUse(1100, 500, 7)))  # private 600
    fp.task_ended(task("t3"))  # no LLM request recorded: not counted
    assert fp.ended == 2 and fp.expected == 900
    assert fp.resident(3) == 3 * 900 + 500 + 100


def test_the_client_records_the_conversation_in_the_current_task() -> None:
    async def reply(request: web.Request) -> web.Response:
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128}})

    async def go() -> Orchestrator:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", reply)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        client = LLMClient()
        client.record_kv = True
        client.set_endpoints([Endpoint(url=f"http://127.0.0.1:{runner.addresses[0][1]}", model="m")])
        orch = task("t1")
        messages = [SYSTEM, ChatMessage(role="user", content="hello")]
        await client.chat(messages, sampling=Sampling(max_tokens=8))  # no current task: nothing recorded
        current = CURRENT_TASK.set(orch)
        try:
            await client.chat(messages, sampling=Sampling(max_tokens=8), sticky_key="agent:t1")
        finally:
            CURRENT_TASK.reset(current)
        await client.close()
        await runner.cleanup()
        return orch

    orch = asyncio.run(go())
    assert list(orch.kv) == ["agent:t1"] and orch.kv["agent:t1"].tokens == 128 and orch.kv["agent:t1"].shared > 64
