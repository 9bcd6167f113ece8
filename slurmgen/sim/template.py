"""The simulator's chat template: a request's prompt and reply as token sequences.

Only the prefix cache needs the tokens themselves (the latency model needs counts): a
ChatML-like rendering whose length is exactly ``server.prompt_tokens``. The tools come
first (as a system prompt would carry them), then each message as ``<|im_start|> role
\\n`` + its text and tool calls + ``<|im_end|>``, then ``<|im_start|> assistant \\n``
opening the reply. The reply's tokens are its content, then each tool call's name and
arguments and two markers, so that the next turn's prompt (which renders that reply as
an assistant message) starts with this turn's prompt and reply, as with a real model.
"""

from __future__ import annotations

from typing import Any

import msgspec

from slurmgen.llm.types import ChatMessage
from slurmgen.sim.content import ReplyPlan, tokens_of

_START, _END = "<|im_start|>", "<|im_end|>"


def prompt_tokens(messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> list[str]:
    out: list[str] = list(tokens_of(msgspec.json.encode(tools).decode())) if tools else []
    for m in messages:
        out += (_START, m.role, "\n")
        out += tokens_of(m.content or "")
        for call in m.tool_calls or ():
            out += tokens_of(call.function.name)
            out += tokens_of(call.function.arguments)
        out.append(_END)
    out += (_START, "assistant", "\n")
    return out


def reply_tokens(plan: ReplyPlan, n_out: int) -> list[str]:
    """The first ``n_out`` tokens of the reply (padded with end markers if it is shorter)."""
    out = list(tokens_of(plan.content))
    for call, _, _ in plan.calls:
        out += tokens_of(call.function.name)
        out += tokens_of(call.function.arguments)
        out += ("<tool_call>", "</tool_call>")
    return (out + [_END] * max(0, n_out - len(out)))[:n_out]
