"""Typed OpenAI chat-completions shapes shared by the client, the simulator and the roles."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec


class ToolFunction(msgspec.Struct, kw_only=True):
    name: str
    arguments: str = "{}"  # JSON text, as in the OpenAI API


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    function: ToolFunction
    type: str = "function"


class ChatMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str  # system | user | assistant | tool
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


@dataclass
class Sampling:
    """How a model samples: declared in a workflow's conf (``workflow.<x>_sampling.temperature=...``)
    and handed as is to ``ctx.llm.chat(..., sampling=...)``."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024


class CompletionUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatReply(msgspec.Struct, kw_only=True):
    """What the client returns for one chat completion."""

    content: str | None
    tool_calls: list[ToolCall] = []
    finish_reason: str = "stop"
    usage: CompletionUsage = msgspec.field(default_factory=CompletionUsage)
    endpoint: str = ""  # base URL that answered
    model: str = ""  # the served model name that answered
    pool: str = ""  # the LLM pool it belongs to
    prompt_token_ids: list[int] = []  # what the model saw (llm.return_token_ids, vLLM)
    token_ids: list[int] = []  # what it produced


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """One replica of a model: base URL (without /v1) and served model name."""

    url: str
    model: str
    capacity: int = 0  # max concurrent requests to send it; 0 = unlimited


class EndpointStats(msgspec.Struct, kw_only=True):
    """Counters for one replica URL (kept after the replica is removed)."""

    requests: int = 0  # attempts sent
    ok: int = 0  # attempts answered with a completion
    errors: int = 0  # attempts that failed
    retries: int = 0  # failed attempts that were then retried
    rate_limited: int = 0  # attempts answered 429 (also counted in errors)
    latency_s: float = 0.0  # summed over the attempts answered with a completion
    prompt_tokens: int = 0  # the answered attempts' usage, counted as they arrive (live, before any record)
    completion_tokens: int = 0
    pool: str = ""  # the LLM pool of the client that sent them
    model: str = ""  # the replica's served model name
