"""tau2's export rules: ``chat`` = the conversation as the assistant saw it (user, assistant
with its tool calls, tool results), OpenAI messages without the domain's system prompt; no
``sft`` (a multi-turn tool-use conversation is chat data)."""

from __future__ import annotations

from typing import Any

import msgspec

from slurmgen.workflow import Record

from .history import agent_view


def chat(rec: Record) -> dict[str, Any] | None:
    messages = [{k: v for k, v in msgspec.to_builtins(m).items() if v is not None} for m in agent_view(rec.history)]
    reward = msgspec.json.decode(rec.output).get("reward") if bytes(rec.output) != b"null" else None
    return {"task_id": rec.task_id, "messages": messages, "reward": reward} if messages else None


SHAPES = {"chat": chat}
