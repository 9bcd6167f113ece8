"""The simulator's generic content: token counter, lorem, JSON from schemas, tool calls, scripts."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from slurmgen.errors import ConfigError
from slurmgen.llm.types import ChatMessage, ToolCall, ToolFunction
from slurmgen.sim.content import (
    ReplyPlan,
    count_tokens,
    generic_reply,
    json_from_schema,
    load_script,
    lorem,
    truncate_tokens,
    wants_tool,
)
from slurmgen.sim.script import ScriptRequest

# -- a small independent JSON-schema checker (the subset the generator claims) --


def violations(value: Any, schema: dict, root: dict | None = None, path: str = "$") -> list[str]:
    root = root if root is not None else schema
    if "$ref" in schema:
        node: Any = root
        for key in schema["$ref"][2:].split("/"):
            node = node[key]
        return violations(value, node, root, path)
    if "const" in schema:
        return [] if value == schema["const"] else [f"{path}: not const"]
    if "enum" in schema:
        return [] if value in schema["enum"] else [f"{path}: {value!r} not in enum"]
    if "anyOf" in schema:
        ok = any(not violations(value, s, root, path) for s in schema["anyOf"])
        return [] if ok else [f"{path}: matches no anyOf branch"]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    if kinds and not any(_is(value, k) for k in kinds):
        return [f"{path}: {value!r} is not {kinds}"]
    errors: list[str] = []
    if isinstance(value, dict):
        errors += [f"{path}: missing {k}" for k in schema.get("required", []) if k not in value]
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                errors += violations(value[k], sub, root, f"{path}.{k}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9):
            errors.append(f"{path}: {len(value)} items")
        for i, item in enumerate(value):
            errors += violations(item, schema.get("items", {}), root, f"{path}[{i}]")
    if isinstance(value, str) and not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 10**9):
        errors.append(f"{path}: length {len(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < schema.get("minimum", -1e300) or value > schema.get("maximum", 1e300):
            errors.append(f"{path}: {value} out of range")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{path}: {value} <= exclusiveMinimum")
    return errors


def _is(value: Any, kind: str) -> bool:
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
    }[kind]


ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "minLength": 12},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 5},
        "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 2.5},
        "status": {"enum": ["open", "shipped", "cancelled"]},
        "gift": {"type": "boolean"},
        "note": {"type": ["string", "null"], "maxLength": 8},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 2, "maxItems": 4},
        "kind": {"const": "order"},
        "address": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/address"}]},
    },
    "required": ["order_id", "quantity", "status", "items", "customer"],
    "$defs": {
        "item": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["sku"],
        },
        "address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("seed", range(25))
def test_json_from_schema_validates(seed: int) -> None:
    value = json_from_schema(ORDER_SCHEMA, random.Random(seed))
    assert violations(value, ORDER_SCHEMA) == []
    assert set(ORDER_SCHEMA["required"]) <= set(value)  # "customer" is required though not described
    msgspec.json.encode(value)  # JSON-serialisable


def test_json_from_schema_is_deterministic() -> None:
    assert json_from_schema(ORDER_SCHEMA, random.Random(7)) == json_from_schema(ORDER_SCHEMA, random.Random(7))


def test_count_tokens_approximates_bpe() -> None:
    assert count_tokens("") == 0
    assert count_tokens("the cat sat") == 3
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("approximately") == 3  # one token per started 6 letters
    assert count_tokens("1234567") == 3  # digits in groups of 3
    assert count_tokens('{"a": 1}') == 7  # { " a " : 1 }
    assert count_tokens("你好") == 2


@pytest.mark.parametrize("n", [0, 1, 7, 100, 1000])
def test_lorem_has_exactly_n_tokens(n: int) -> None:
    text = lorem(random.Random(n), n)
    assert count_tokens(text) == n
    assert count_tokens(truncate_tokens(text, n // 2)) == n // 2


def test_reply_plan_stream_deltas_rebuild_the_reply() -> None:
    call = ToolCall(id="call-1", function=ToolFunction(name="lookup", arguments='{"q": "red shoes", "n": 3}'))
    plan = ReplyPlan("Let me check that.", [call])
    header = count_tokens("lookup") + 2
    assert plan.total == count_tokens("Let me check that.") + header + count_tokens(call.function.arguments)
    text, args, names = "", "", []
    for start in range(0, plan.total, 3):  # a lagging client: three tokens per chunk
        delta = plan.delta(start, min(start + 3, plan.total))
        text += delta.get("content", "")
        for d in delta.get("tool_calls", []):
            names += [d["function"]["name"]] if "name" in d["function"] else []
            args += d["function"].get("arguments", "")
    assert (text, args, names) == ("Let me check that.", call.function.arguments, ["lookup"])
    content, calls = plan.message(5)  # cut inside the text: no tool call yet
    assert content == truncate_tokens("Let me check that.", 5) and calls == []


def request(**kw: Any) -> ScriptRequest:
    kw.setdefault("messages", [ChatMessage(role="user", content="What is the weather in Paris?")])
    return ScriptRequest(model="m", **kw)


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city", "days"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize("seed", range(10))
def test_required_tool_call_has_valid_json_arguments(seed: int) -> None:
    reply = generic_reply(request(tools=[WEATHER], tool_choice="required"), random.Random(seed))
    assert reply.content is None and reply.tool_calls and reply.finish_reason == "tool_calls"
    call = reply.tool_calls[0]
    assert call.function.name == "get_weather" and call.id
    args = msgspec.json.decode(call.function.arguments)
    assert violations(args, WEATHER["function"]["parameters"]) == []


def test_named_tool_choice_picks_that_tool() -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    for seed in range(5):
        reply = generic_reply(request(tools=[WEATHER, TIME], tool_choice=choice), random.Random(seed))
        assert reply.tool_calls and reply.tool_calls[0].function.name == "get_time"
    with pytest.raises(ValueError, match="nope"):
        generic_reply(
            request(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}), random.Random(0)
        )


def test_auto_calls_once_then_answers_after_the_tool_result() -> None:
    first = request(tools=[WEATHER], tool_choice="auto")
    assert wants_tool(first) == ""
    call = generic_reply(first, random.Random(0)).tool_calls[0]
    after = request(
        tools=[WEATHER],
        messages=[
            *first.messages,
            ChatMessage(role="assistant", tool_calls=[call]),
            ChatMessage(role="tool", tool_call_id=call.id, content='{"temp": 21}'),
        ],
    )
    reply = generic_reply(after, random.Random(0))
    assert reply.tool_calls is None and reply.content
    assert wants_tool(request(tools=[WEATHER], tool_choice="none")) is None
    assert wants_tool(request()) is None  # no tools, no call


def test_response_format_json_schema_and_object() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "order", "schema": ORDER_SCHEMA}}
    reply = generic_reply(request(response_format=fmt), random.Random(3))
    assert violations(msgspec.json.decode(reply.content), ORDER_SCHEMA) == []
    obj = msgspec.json.decode(generic_reply(request(response_format={"type": "json_object"}), random.Random(3)).content)
    assert isinstance(obj, dict) and obj


def test_plain_text_is_deterministic_per_rng() -> None:
    a = generic_reply(request(), random.Random(11)).content
    assert a == generic_reply(request(), random.Random(11)).content
    assert a != generic_reply(request(), random.Random(12)).content


def test_load_script() -> None:
    assert load_script("") is None and load_script("generic") is None
    assert load_script("tests.simproc:fill_max_tokens").__name__ == "fill_max_tokens"
    with pytest.raises(ConfigError, match=r"package\.module:attribute"):
        load_script("no_colon")
    with pytest.raises(ConfigError, match="cannot import"):
        load_script("no.such.module:fn")
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_script("tests.simproc:nope")
    with pytest.raises(ConfigError, match="is not a function"):
        load_script("tests.simproc:__doc__")
