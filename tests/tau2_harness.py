"""Run tau2 tasks through the real roles and transition in one process: the simulator's
script answers the LLM calls directly and sessions live in ``LocalPools``."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import msgspec

from slurmgen.config.workflows import get_workflow
from slurmgen.llm.types import ChatMessage, ChatReply, CompletionUsage, Sampling
from slurmgen.protocol import Orchestrator
from slurmgen.runtime.worker import run_role
from slurmgen.sim.content import count_tokens
from slurmgen.sim.script import ScriptRequest
from slurmgen.toolpool import LocalPools
from slurmgen.workflow import RoleContext, first_role


class ScriptLLM:
    def __init__(self, script: Callable[..., Any]) -> None:
        self.script = script
        self.calls = 0

    async def chat(self, messages: list[ChatMessage], *, sampling: Sampling, seed: int | None = None,
                   tools: list[dict] | None = None, tool_choice: object = None, response_format: dict | None = None,
                   sticky_key: str | None = None) -> ChatReply:
        self.calls += 1
        req = ScriptRequest(model="m", messages=messages, seed=seed, tools=tools, tool_choice=tool_choice)
        reply = self.script(req, random.Random(seed))
        if reply is None:
            reply_content, calls = "generic text", []
        else:
            reply_content, calls = reply.content, reply.tool_calls or []
        prompt = sum(count_tokens(m.content or "") for m in messages)
        return ChatReply(content=reply_content, tool_calls=calls,
                         usage=CompletionUsage(prompt_tokens=prompt, completion_tokens=count_tokens(reply_content or "") + 1))


def make_conf(**overrides: Any) -> Any:
    from slurmgen.agents.tau2.conf import Tau2Conf

    conf = Tau2Conf(task_id_in_user_prompt=True)  # the scripts learn the task from it (a sim run's default)
    for k, v in overrides.items():
        setattr(conf, k, v)
    return conf


async def run_task(conf: Any, row: dict[str, Any], script: Callable[..., Any], *, seed: int = 1,
                   trial: int = 0, pools: Any = None, llm: Any = None) -> Orchestrator:
    from slurmgen.agents.tau2.domain import open_session

    workflow = get_workflow(conf.name)
    pools = pools or LocalPools(open_session)
    ctx = RoleContext(llm=llm or ScriptLLM(script), conf=conf, log=logging.getLogger("test"), tools=pools)
    orch = Orchestrator(task_id=f"{row['id']}:{trial}", row_id=row["id"], trial=trial, seed=seed, origin="o",
                        row=msgspec.Raw(msgspec.json.encode(row)))
    orch.next_role = first_role(workflow, orch) or ""
    while orch.next_role:
        await run_role(workflow, ctx, orch)
    pools.release(orch)
    return orch


def run(conf: Any, row: dict[str, Any], script: Callable[..., Any], **kw: Any) -> Orchestrator:
    return asyncio.run(run_task(conf, row, script, **kw))
