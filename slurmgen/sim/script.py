"""The contract between the simulator and a workflow's content script.

A script is a plain function ``respond(req, rng) -> ScriptReply``, named in config as
``"package.module:function"``. It must be deterministic given ``req`` and ``rng`` (the
simulator seeds ``rng`` from the request's ``seed`` and messages). Return ``None`` to
let the simulator's generic content answer (lorem text of a sampled length,
schema-valid JSON for ``response_format``, schema-valid tool calls when a tool is
required or named).
"""

from __future__ import annotations

import random
from typing import Callable

import msgspec

from slurmgen.llm.types import ChatMessage, ToolCall


class ScriptRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[ChatMessage]
    max_tokens: int = 1024
    temperature: float = 1.0
    seed: int | None = None
    tools: list[dict] | None = None  # OpenAI tool schemas, as sent
    tool_choice: object = None  # "auto" | "required" | "none" | {"type": "function", ...}
    response_format: dict | None = None


class ScriptReply(msgspec.Struct, kw_only=True):
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    finish_reason: str = "stop"
    # never answer this request (a replica stuck on one request): for tests of the driver's
    # stall watchdog; the connection stays open until the client gives up
    hang: bool = False


Script = Callable[[ScriptRequest, random.Random], ScriptReply | None]
