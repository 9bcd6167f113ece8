"""The simulator's generic content: deterministic, structurally valid, cheap.

- ``count_tokens`` approximates a BPE tokenizer (Llama-3 / GPT style) with one regex:
  a run of ASCII letters counts one token per started 6 letters ("the" = 1,
  "approximately" = 3), a run of digits one token per started 3 digits (Llama 3 splits
  numbers that way), and every other non-space character (punctuation, symbols,
  non-ASCII letters) one token. Whitespace is free (BPE merges it into the next
  word). Real tokenizers differ by ±20 % on English prose; the count is only used
  for lengths, usage and timing.
- ``lorem`` writes text of exactly N tokens by that count.
- ``json_from_schema`` writes a value valid against a JSON schema (type, enum, const,
  properties/required, items/minItems/maxItems, min/max, minLength/maxLength,
  anyOf/oneOf/allOf, local ``$ref``). Not supported: ``pattern``, ``uniqueItems``,
  ``not``, ``if/then``.
- ``generic_reply`` is the answer when no script (or a script returning None) decides.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Callable
from typing import Any

import msgspec

from slurmgen.errors import ConfigError
from slurmgen.llm.types import ToolCall, ToolFunction
from slurmgen.sim.script import Script, ScriptReply, ScriptRequest

_TOKEN = re.compile(r"[A-Za-z]{1,6}|[0-9]{1,3}|[^\sA-Za-z0-9]")

GENERIC_MIN_TOKENS = 16  # length range of generic text replies (before max_tokens)
GENERIC_MAX_TOKENS = 256
_MAX_DEPTH = 8  # nesting beyond which optional properties and items are left out

_WORDS = (
    "the of and to in is that for it as with was on be by this are or at from an not "
    "but have which one can all were there more data model time we their has will about "
    "when each other some these into than then two may could first also use such well "
    "only new state value task agent tool user answer result order table system query "
    "given line level point test case check run node step rate field input output"
).split()


@functools.lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    """Approximate BPE token count of ``text`` (see the module docstring)."""
    return len(_TOKEN.findall(text))


@functools.lru_cache(maxsize=4096)
def tokens_of(text: str) -> tuple[str, ...]:
    """The tokens of ``text`` (as ``count_tokens`` counts them); cached, as a conversation's
    messages come again in each of its later requests."""
    return tuple(_TOKEN.findall(text))


def token_ends(text: str) -> list[int]:
    """End offset of each token of ``text``; ``text[:ends[k-1]]`` holds its first k tokens."""
    return [m.end() for m in _TOKEN.finditer(text)]


def truncate_tokens(text: str, n: int) -> str:
    """The first ``n`` tokens of ``text`` (all of it if it is shorter)."""
    ends = token_ends(text)
    return text if n >= len(ends) else text[: ends[n - 1]] if n > 0 else ""


def lorem(rng: random.Random, n_tokens: int) -> str:
    """Sentences of common words (each one token), exactly ``n_tokens`` tokens long."""
    words = rng.choices(_WORDS, k=n_tokens)
    sentences: list[str] = []
    i = 0
    while i < n_tokens:
        length = rng.randint(6, 20)
        sentence = " ".join(words[i : i + length]).capitalize()
        i += length
        if i < n_tokens:  # the full stop is a token too
            sentence += "."
            i += 1
        sentences.append(sentence)
    return " ".join(sentences)


def _words(rng: random.Random, lo: int = 1, hi: int = 4) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi)))


# -- JSON from a schema ------------------------------------------------------


def json_from_schema(schema: Any, rng: random.Random) -> Any:
    """A value valid against ``schema`` (a JSON schema as a dict)."""
    return _value(schema if isinstance(schema, dict) else {}, rng, schema, 0)


def _resolve(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    ref = schema.get("$ref")
    while isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for key in ref[2:].split("/"):
            node = node.get(key.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        ref = node.get("$ref") if isinstance(node, dict) else None
    return schema


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or ["null"]
        kind = kinds[0]
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _value(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> Any:
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _value({**_strip(schema, key), **rng.choice(schema[key])}, rng, root, depth)
    if schema.get("allOf"):
        return _value(_merge_all_of(schema, root), rng, root, depth)
    kind = _type_of(schema)
    generate: _Generator = _GENERATORS.get(kind, _string)
    return generate(schema, rng, root, depth)


def _strip(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _merge_all_of(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    merged = _strip(schema, "allOf")
    for part in schema["allOf"]:
        part = _resolve(part, root)
        merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
        merged["required"] = [*merged.get("required", []), *part.get("required", [])]
        merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
    return merged


def _object(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties") or {}
    required = list(schema.get("required") or [])
    names = list(props) if depth < _MAX_DEPTH else [n for n in props if n in required]
    out = {name: _value(props[name] or {}, rng, root, depth + 1) for name in names}
    for name in required:  # required but not described: any string will do
        out.setdefault(name, _words(rng))
    return out


def _array(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> list[Any]:
    items = schema.get("items")
    if isinstance(items, list):  # tuple form: one value per position
        return [_value(s, rng, root, depth + 1) for s in items]
    lo = int(schema.get("minItems", 0 if depth >= _MAX_DEPTH else 1))
    hi = int(schema.get("maxItems", max(lo, 3)))
    lo = lo if "minItems" in schema else min(lo, hi)
    n = lo if depth >= _MAX_DEPTH else rng.randint(lo, max(lo, hi))
    return [_value(items or {}, rng, root, depth + 1) for _ in range(n)]


def _string(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> str:
    fmt = schema.get("format")
    if fmt in _FORMATS:
        return _FORMATS[fmt](rng)
    text = _words(rng)
    lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
    while len(text) < lo:
        text += " " + rng.choice(_WORDS)
    return text[: int(hi)] if hi is not None else text


def _num(schema: dict[str, Any], key: str, shift: float = 0.0) -> float | None:
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value + shift


def _bounds(schema: dict[str, Any], lo: float, hi: float, step: float) -> tuple[float, float]:
    """Inclusive range from minimum/maximum/exclusive*, else around the default [lo, hi]."""
    mins = [v for v in (_num(schema, "minimum"), _num(schema, "exclusiveMinimum", step)) if v is not None]
    maxs = [v for v in (_num(schema, "maximum"), _num(schema, "exclusiveMaximum", -step)) if v is not None]
    lo = max(mins) if mins else lo
    hi = min(maxs) if maxs else hi
    if hi < lo:
        if not maxs:
            hi = lo + 100
        elif not mins:
            lo = hi - 100
        else:
            hi = lo  # contradictory schema: nothing is valid, stay at the minimum
    return lo, hi


def _integer(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> int:
    lo, hi = _bounds(schema, 0, 100, 1)
    return rng.randint(math.ceil(lo), max(math.ceil(lo), math.floor(hi)))


def _number(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> float:
    lo, hi = _bounds(schema, 0.0, 100.0, 1e-6)
    value = round(rng.uniform(lo, hi), 3)
    return float(min(max(value, lo), hi))


def _boolean(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> bool:
    return rng.random() < 0.5


def _null(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> None:
    return None


_Generator = Callable[[dict[str, Any], random.Random, Any, int], Any]

_GENERATORS: dict[str, _Generator] = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "null": _null,
}

_FORMATS = {
    "date-time": lambda rng: f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:00:00Z",
    "date": lambda rng: f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    "email": lambda rng: f"{rng.choice(_WORDS)}{rng.randint(1, 99)}@example.com",
    "uri": lambda rng: f"https://example.com/{rng.choice(_WORDS)}",
    "uuid": lambda rng: (
        f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-8{rng.getrandbits(12):03x}-"
        f"{rng.getrandbits(48):012x}"
    ),
}


# -- tool calls and the generic reply ---------------------------------------


def _tool_named(tools: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((t for t in tools if (t.get("function") or {}).get("name") == name), None)


def wants_tool(req: ScriptRequest) -> str | None:
    """Name of the tool the generic policy calls now, or None to answer in text.

    ``required`` → any tool; a named function → that one; ``auto`` (or unset with
    tools) → a tool unless a tool result already follows the last user message;
    ``none`` → text.
    """
    tools = req.tools or []
    choice = req.tool_choice
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        return ((choice.get("function") or {}).get("name")) or None
    if choice != "required":
        last_user = max((i for i, m in enumerate(req.messages) if m.role == "user"), default=-1)
        if any(m.role == "tool" for m in req.messages[last_user + 1 :]):
            return None
    return ""  # any tool


def make_tool_call(tools: list[dict[str, Any]], name: str, rng: random.Random) -> ToolCall:
    """A call of tool ``name`` (any tool if "") with schema-valid JSON arguments."""
    tool = _tool_named(tools, name) if name else rng.choice(tools)
    if tool is None:
        raise ValueError(f"tool_choice names {name!r}, which is not among the tools")
    fn = tool.get("function") or {}
    args = json_from_schema(fn.get("parameters") or {"type": "object"}, rng)
    return ToolCall(
        id=f"chatcmpl-tool-{rng.getrandbits(64):016x}",
        function=ToolFunction(name=fn.get("name", ""), arguments=msgspec.json.encode(args).decode()),
    )


def generic_reply(req: ScriptRequest, rng: random.Random) -> ScriptReply:
    """Tool call, JSON or lorem text, following ``tool_choice`` and ``response_format``."""
    tool = wants_tool(req)
    if tool is not None:
        return ScriptReply(tool_calls=[make_tool_call(req.tools or [], tool, rng)], finish_reason="tool_calls")
    fmt = req.response_format or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return ScriptReply(content=msgspec.json.encode(json_from_schema(schema, rng)).decode())
    if fmt.get("type") == "json_object":
        return ScriptReply(content=msgspec.json.encode({"answer": lorem(rng, rng.randint(4, 40))}).decode())
    return ScriptReply(content=lorem(rng, rng.randint(GENERIC_MIN_TOKENS, GENERIC_MAX_TOKENS)))


def load_script(path: str) -> Script | None:
    """``"<workflow>/<script>"`` (one of a registered workflow's sim_scripts), or an import path
    ``"package.module:function"``; ``""`` or ``"generic"`` means no script."""
    from slurmgen.config.workflows import get_workflow, import_path  # the registry imports the author module

    if path in ("", "generic"):
        return None
    workflow, slash, name = path.partition("/")
    if slash and ":" not in path:
        scripts = get_workflow(workflow).sim_scripts
        if name not in scripts:
            raise ConfigError(f"llm.script={name!r}: workflow {workflow!r} has no such script; "
                              f"valid: {', '.join(sorted(scripts)) or 'none'}, generic, or package.module:function")
        return scripts[name]
    fn = import_path(path, "llm.script")
    if not callable(fn):
        raise ConfigError(f"llm.script={path!r} is not a function")
    script: Script = fn
    return script


# -- a reply as a sequence of tokens ----------------------------------------


def _slice(text: str, ends: list[int], start: int, stop: int) -> str:
    """Text of tokens [start, stop); the last token of ``text`` carries any trailing text."""
    if stop <= start:
        return ""
    first = ends[start - 1] if start > 0 else 0
    last = len(text) if stop >= len(ends) else ends[stop - 1]
    return text[first:last]


class ReplyPlan:
    """Maps output-token positions to reply text: the content first, then each tool call.

    A tool call costs ``count_tokens(name) + 2`` header tokens (its markup; the first one
    carries its id and name) followed by the tokens of its JSON arguments. ``delta(a, b)``
    is the OpenAI streaming delta for tokens [a, b); ``message(n)`` the whole reply cut
    after n tokens.
    """

    __slots__ = ("calls", "content", "ends", "total")

    def __init__(self, content: str | None, tool_calls: list[ToolCall] | None) -> None:
        self.content = content or ""
        self.ends = token_ends(self.content)
        self.calls = [
            (c, count_tokens(c.function.name) + 2, token_ends(c.function.arguments)) for c in tool_calls or ()
        ]
        self.total = len(self.ends) + sum(h + len(e) for _, h, e in self.calls)

    def delta(self, start: int, stop: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n = len(self.ends)
        text = _slice(self.content, self.ends, min(start, n), min(stop, n))
        if text:
            out["content"] = text
        pos = n
        calls = []
        for i, (call, header, ends) in enumerate(self.calls):
            size = header + len(ends)
            lo, hi = max(start - pos, 0), min(stop - pos, size)
            item = self._call_delta(i, call, header, ends, lo, hi) if lo < hi else None
            if item is not None:
                calls.append(item)
            pos += size
        if calls:
            out["tool_calls"] = calls
        return out

    @staticmethod
    def _call_delta(
        index: int, call: ToolCall, header: int, ends: list[int], lo: int, hi: int
    ) -> dict[str, Any] | None:
        args = _slice(call.function.arguments, ends, max(lo - header, 0), max(hi - header, 0))
        if lo > 0:
            return {"index": index, "function": {"arguments": args}} if args else None
        fn = {"name": call.function.name, "arguments": args}
        return {"index": index, "id": call.id, "type": "function", "function": fn}

    def message(self, n_tokens: int) -> tuple[str | None, list[dict[str, Any]]]:
        """(content, tool_calls) of the first ``n_tokens`` tokens, as a non-streaming reply."""
        out = self.delta(0, n_tokens)
        calls = [{k: v for k, v in c.items() if k != "index"} for c in out.get("tool_calls", ())]
        return out.get("content", None if calls else ""), calls
