"""The four tau2 roles: user simulator, assistant, tool executor (env), reward.

Each is stateless: it reads the task (the row: a tau2 Task), the turns and the counters
from the message, does one step, and lets ``flow.transition`` route. The user and the
assistant are LLM calls (sticky per task: ``user:<task>`` / ``agent:<task>``, so a
replica keeps the conversation's prefix cache); ``env`` runs the step's tool calls in
the task's tool-pool session (opened on its first tool call, on one pool member, closed
by the origin when the record is written); ``reward`` runs tau2's evaluator.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import msgspec

from slurmgen.workflow import (
    ChatMessage,
    ChatReply,
    Failure,
    Orchestrator,
    RoleContext,
    Status,
    Task,
    Turn,
    add_turn,
    fail,
    finish,
)

from .conf import Tau2Conf
from .data import Tau2Task
from .flow import Tau2State, caller_of, end_of_step
from .history import (
    EnvData,
    EnvResult,
    agent_view,
    arguments,
    plain,
    seed,
    tool_calls,
    user_view,
)

Tau2Hop = Task[Tau2Task, Tau2State]
Tau2Context = RoleContext[Tau2Conf]


def _domain() -> ModuleType:
    """tau2's side (imports the tau2 package: seconds), loaded on first use; the workflow's
    ``warm`` loads it when a peer starts."""
    from . import domain

    return domain


def warm() -> None:
    _domain().warm()


# tau2's evaluator is blocking Python (airline: two environments of a 7 MB database); it
# runs on this thread so the peer's event loop keeps routing meanwhile.
_evaluator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tau2-reward")


class _Row(msgspec.Struct):
    initial_state: Any = None


def _task(orch: Orchestrator) -> Any:
    return _domain().parse_task(bytes(orch.row))


def _start(orch: Orchestrator, state: Tau2State) -> None:
    """First role of a task: the greeting, or the task's message history."""
    if orch.history:
        return
    initial = msgspec.json.decode(orch.row, type=_Row).initial_state or {}
    seed(orch, initial.get("message_history") or [])
    last = orch.history[-1]
    if last.role == "user" and not tool_calls(last):
        token = _stop_token(last.content)
        if token:
            state.termination, state.stop = "user_stop", token


def _stop_token(text: str | None) -> str:
    return next((name for tok, name in _domain().STOP_TOKENS.items() if tok in (text or "")), "")


def _system(ctx: Tau2Context, text: str) -> ChatMessage:
    prefix = ctx.conf.prompt_prefix
    return ChatMessage(role="system", content=f"{prefix}\n{text}" if prefix else text)


def user_prompt(conf: Any, task: Any, task_id_marker: str) -> str:
    text = _domain().user_system_prompt(conf.domain, task)
    if conf.task_id_in_user_prompt:
        text += f"\n\n<task_id>{task_id_marker}</task_id>"
    return text


def _llm_step(orch: Orchestrator, ctx: Tau2Context, role: str, reply: ChatReply, state: Tau2State) -> None:
    """Record an LLM turn and apply tau2's end-of-step rules."""
    add_turn(orch, role, reply, at=time.time())
    state.llm_calls += 1
    to_env = bool(reply.tool_calls)
    if not to_env and not (reply.content or "").strip():
        state.termination = f"{'agent' if role == 'assistant' else role}_error"  # tau2: empty message
    elif role == "user" and not to_env:
        token = _stop_token(reply.content)
        if token:
            state.termination, state.stop = "user_stop", token
    end_of_step(state, ctx.conf, llm=True, to_env=to_env)
    if to_env:
        state.tool_calls += len(reply.tool_calls)


async def user_role(task: Tau2Hop, ctx: Tau2Context) -> None:
    orch, conf, state, tau2_task = task.orch, ctx.conf, task.state, _task(task.orch)
    _start(orch, state)
    if state.termination:
        return
    tools = _domain().tool_schemas(conf.domain)[1]
    messages = [_system(ctx, user_prompt(conf, tau2_task, f"{_domain().data_domain(conf.domain)}/{tau2_task.id}")),
                *user_view(orch.history)]
    reply = await ctx.llm.chat(messages, sampling=conf.user_sampling, seed=orch.seed,
                               tools=tools or None, tool_choice="auto" if tools else None,
                               sticky_key=f"user:{orch.task_id}")
    _llm_step(orch, ctx, "user", reply, state)


async def assistant_role(task: Tau2Hop, ctx: Tau2Context) -> None:
    orch, conf, state = task.orch, ctx.conf, task.state
    _start(orch, state)
    tools = _domain().tool_schemas(conf.domain)[0]
    messages = [_system(ctx, _domain().agent_system_prompt(conf.domain)), *agent_view(orch.history)]
    reply = await ctx.llm.chat(messages, sampling=conf.agent_sampling, seed=orch.seed,
                               tools=tools, tool_choice=conf.agent_tool_choice, sticky_key=f"agent:{orch.task_id}")
    _llm_step(orch, ctx, "assistant", reply, state)


async def env_role(task: Tau2Hop, ctx: Tau2Context) -> None:
    """Run the caller's tool calls in the task's session; one env turn per step."""
    orch, conf, state = task.orch, ctx.conf, task.state
    _start(orch, state)
    if ctx.tools is None:
        raise RuntimeError("the tau2 workflow needs tool pools (toolpool.size >= 1)")
    caller = caller_of(orch.history)
    calls = [{"id": c.id, "name": c.function.name, "arguments": arguments(c), "requestor": caller}
             for c in tool_calls(orch.history[-1])]  # the transition sends here right after them
    initial = msgspec.json.decode(orch.row, type=_Row).initial_state
    await ctx.tools.open(orch, "env", {"domain": conf.domain, "initial_state": initial})
    results = msgspec.convert(await ctx.tools.call(orch, "env", "step", {"calls": calls}), list[EnvResult])
    state.errors += sum(r.error for r in results)
    orch.history.append(Turn(role="env", data=msgspec.Raw(msgspec.json.encode(EnvData(results=results))),
                             at=time.time()))
    end_of_step(state, conf, llm=False, to_env=False)


async def reward_role(task: Tau2Hop, ctx: Tau2Context) -> None:
    """tau2's ``evaluate_simulation(..., ALL)``: the product of the task's reward-basis checks."""
    orch, conf, state, tau2_task = task.orch, ctx.conf, task.state, _task(task.orch)
    _start(orch, state)
    loop = asyncio.get_running_loop()
    try:
        info = await loop.run_in_executor(_evaluator, _domain().evaluate, conf.domain, tau2_task, plain(orch.history),
                                          state.termination or "user_stop")
    except Exception as exc:  # noqa: BLE001 - e.g. the replay did not reproduce a recorded tool output
        fail(orch, Failure.REWARD_ERROR, f"{type(exc).__name__}: {exc}")
        return
    state.reward = float(info["reward"])
    orch.metrics["reward"] = state.reward
    orch.history.append(Turn(role="reward", data=msgspec.Raw(msgspec.json.encode(info)), at=time.time()))
    finish(orch, Status.OK, state.termination or "user_stop")
