"""What one exported row looks like: the record itself, a chat, or a prompt/completion pair.

A workflow gives its own rules through ``WorkflowConf.export`` ("package.module:SHAPES", a
dict of shape name -> function(record) -> dict | None; None leaves the record out). Without
one, ``chat`` maps each turn with content to ``{role, content}`` and there is no ``sft``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Callable

import msgspec

from slurmgen.records import Record

ShapeFn = Callable[[Record], "dict[str, Any] | None"]
SHAPES = ("records", "chat", "sft", "tokens")


def as_record(rec: Record) -> dict[str, Any]:
    return msgspec.json.decode(msgspec.json.encode(rec))  # Raw fields become the JSON they hold


def default_chat(rec: Record) -> dict[str, Any] | None:
    messages = [{"role": t.role, "content": t.content} for t in rec.history if t.content]
    return {"task_id": rec.task_id, "messages": messages} if messages else None


def tokens(rec: Record) -> dict[str, Any] | None:
    """Per LLM turn, the token ids the model saw and produced (llm.return_token_ids), attributed to
    the role that asked: user-simulator and assistant tokens stay apart."""
    turns = [{"role": t.role, "prompt_token_ids": t.prompt_token_ids, "token_ids": t.token_ids,
              "finish_reason": t.finish_reason, "model": t.model} for t in rec.history if t.token_ids]
    return {"task_id": rec.task_id, "status": rec.status, "turns": turns} if turns else None


def state_of(rec: Record) -> dict[str, Any]:
    return json.loads(bytes(rec.output)) or {}


def resolve(shape: str, rules: Mapping[str, ShapeFn], workflow: str) -> ShapeFn:
    """The function for ``shape``, or a ValueError that says which shapes this workflow has."""
    if shape == "records":
        return as_record
    if shape in rules:
        return rules[shape]
    if shape == "chat":
        return default_chat
    if shape == "tokens":
        return tokens
    have = ", ".join(["records", "chat", *sorted(k for k in rules if k != "chat")])
    raise ValueError(f"workflow {workflow!r} has no {shape!r} rule (its WorkflowConf.export); shapes it has: {have}")
