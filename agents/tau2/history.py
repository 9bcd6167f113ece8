"""The task's turns seen from each side, and as tau2 messages.

Turns: ``assistant`` / ``user`` (text in ``content``, OpenAI tool calls in
``tool_calls``), ``env`` (``data.results``: one ``{id, content, error, requestor}`` per
call of the step), ``reward``. As in tau2, the assistant sees user texts, its own
messages and the results of its own tool calls; the user simulator sees the same
conversation with the roles flipped — assistant texts as "user", its own messages as
"assistant", the results of its own tool calls — and never the assistant's tool traffic.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

from slurmgen.workflow import ChatMessage, Orchestrator, ToolCall, ToolFunction, Turn

from .flow import has_tool_calls

GREETING = "Hi! How can I help you today?"  # tau2's DEFAULT_FIRST_AGENT_MESSAGE


class EnvResult(msgspec.Struct, kw_only=True):
    id: str
    content: str
    error: bool = False
    requestor: str = "assistant"


class EnvData(msgspec.Struct, kw_only=True):
    results: list[EnvResult]


def tool_calls(turn: Turn) -> list[ToolCall]:
    return msgspec.json.decode(turn.tool_calls, type=list[ToolCall] | None) or [] if has_tool_calls(turn) else []


def env_results(turn: Turn) -> list[EnvResult]:
    return msgspec.json.decode(turn.data, type=EnvData).results


def arguments(call: ToolCall) -> dict[str, Any]:
    """A call's JSON arguments as a dict; text that is not a JSON object counts as ``{}``
    (the tool then answers with its own error, which tau2's replay reproduces)."""
    try:
        value = json.loads(call.function.arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def agent_view(history: list[Turn]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for turn in history:
        if turn.role == "assistant":
            calls = tool_calls(turn)
            out.append(ChatMessage(role="assistant", content=turn.content or None, tool_calls=calls or None))
        elif turn.role == "user" and not has_tool_calls(turn):
            out.append(ChatMessage(role="user", content=turn.content))
        elif turn.role == "env":
            out += [ChatMessage(role="tool", content=r.content, tool_call_id=r.id)
                    for r in env_results(turn) if r.requestor == "assistant"]
    return out


def user_view(history: list[Turn]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for turn in history:
        if turn.role == "assistant" and not has_tool_calls(turn):
            out.append(ChatMessage(role="user", content=turn.content))
        elif turn.role == "user":
            calls = tool_calls(turn)
            out.append(ChatMessage(role="assistant", content=turn.content or None, tool_calls=calls or None))
        elif turn.role == "env":
            out += [ChatMessage(role="tool", content=r.content, tool_call_id=r.id)
                    for r in env_results(turn) if r.requestor == "user"]
    return out


def plain(history: list[Turn]) -> list[dict[str, Any]]:
    """The conversation for ``domain.to_tau2_messages`` (reward turns left out)."""
    out: list[dict[str, Any]] = []
    for turn in history:
        if turn.role in ("assistant", "user"):
            calls = [{"id": c.id, "name": c.function.name, "arguments": arguments(c)} for c in tool_calls(turn)]
            out.append({"role": turn.role, "content": turn.content, "tool_calls": calls})
        elif turn.role == "env":
            out.append({"role": "env", "results": [msgspec.to_builtins(r) for r in env_results(turn)]})
    return out


def seed(orch: Orchestrator, message_history: list[dict[str, Any]]) -> None:
    """Start the conversation: tau2's greeting, or the task's initial message history."""
    now = time.time()
    if not message_history:
        orch.history.append(Turn(role="assistant", content=GREETING, at=now))
        return
    results: list[EnvResult] = []
    for msg in message_history:
        role = str(msg.get("role") or "")
        if role == "tool":
            results.append(EnvResult(id=msg.get("id", ""), content=msg.get("content") or "",
                                     error=bool(msg.get("error")), requestor=msg.get("requestor", "assistant")))
            continue
        if results:
            orch.history.append(Turn(role="env", data=msgspec.Raw(msgspec.json.encode(EnvData(results=results))), at=now))
            results = []
        calls = [ToolCall(id=c.get("id", ""),
                          function=ToolFunction(name=c["name"], arguments=json.dumps(c.get("arguments") or {})))
                 for c in msg.get("tool_calls") or []]
        turn = Turn(role=role, content=msg.get("content") or "", at=now)
        if calls:
            turn.tool_calls = msgspec.Raw(msgspec.json.encode(calls))
        orch.history.append(turn)
    if results:
        orch.history.append(Turn(role="env", data=msgspec.Raw(msgspec.json.encode(EnvData(results=results))), at=now))
