"""Simulator scripts for tau2: ``oracle`` (gold replay) and ``respond`` (the default mix).

Both see only the chat request. The user simulator's system prompt ends with
``<task_id>domain/id</task_id>`` (``workflow.task_id_in_user_prompt``); the scripted
user repeats it in its first message as ``<<ref:domain/id>>``, which is how the scripted
assistant, whose prompt holds only the policy, learns the task. The task itself (gold
``actions``, ``communicate_info``) is read from the installed tau2 data without
importing tau2.

**oracle** replays the gold actions in their order — the assistant's as its tool calls,
the user's (telecom) as the user's tool calls: the assistant asks with ``[need N]``
when the next gold actions are the user's, the user answers ``[done N]`` after
performing them (its texts all carry the reference) — then the assistant says every ``communicate_info`` string and
``[all done]``, and the user ends with ``###STOP###``. tau2's evaluator gives 1.0.

**idle** is a do-nothing agent: it answers the user's first message with an apology
and no tool call; the user then stops (tau2's do-nothing floor, with one agent turn).

**respond** picks a behaviour per task attempt (from the task and the request seed, so
trials differ): oracle (45 %), oracle after a failed tool call (8 %: a tool error, still
reward 1), sloppy (10 %: skips its last action and the communication), do-nothing
(10 %: the user stops at once, tau2's floor), transfer (7 %: ``###TRANSFER###``),
out-of-scope (7 %: ``###OUT-OF-SCOPE###``), error loop (8 %: bad tool calls until
``too_many_errors``), endless chat (5 %: until ``max_steps``). Tasks it cannot find
(custom datasets) get the simulator's generic content.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import random
import re
from pathlib import Path
from typing import Any

from slurmgen.workflow import (
    ChatMessage,
    ScriptReply,
    ScriptRequest,
    ToolCall,
    ToolFunction,
    lorem,
)

TASK_ID = re.compile(r"<task_id>([^/<]+)/(.+?)</task_id>")
REF = re.compile(r"<<ref:([^/]+)/(.+?)>>")
NEED = re.compile(r"\[need (\d+)\]")
DONE = re.compile(r"\[done (\d+)\]")
ALL_DONE = "[all done]"

MODES = (("oracle", 0.45), ("detour", 0.08), ("sloppy", 0.10), ("nothing", 0.10), ("transfer", 0.07),
         ("out_of_scope", 0.07), ("errors", 0.08), ("chat", 0.05))


@functools.cache
def _tasks(domain: str) -> dict[str, dict[str, Any]]:
    spec = importlib.util.find_spec("tau2")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = "telecom" if domain.startswith("telecom") else domain
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "tau2" / "domains" / folder / "tasks.json"
    if not path.exists():
        return {}
    return {t["id"]: t for t in json.loads(path.read_text())}


def find_task(domain: str, task_id: str) -> dict[str, Any] | None:
    return _tasks(domain).get(task_id)


def gold(task: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    criteria = task.get("evaluation_criteria") or {}
    return list(criteria.get("actions") or []), list(criteria.get("communicate_info") or [])


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(id=call_id, function=ToolFunction(name=name, arguments=json.dumps(arguments)))


def _mode(ref: str, seed: int | None) -> str:
    digest = hashlib.sha256(f"{ref}\0{seed}".encode()).digest()
    x = int.from_bytes(digest[:8], "big") / 2**64
    for name, p in MODES:
        if x < p:
            return name
        x -= p
    return MODES[0][0]


def _text(rng: random.Random, head: str, lo: int = 8, hi: int = 40) -> str:
    return f"{head} {lorem(rng, rng.randint(lo, hi))}"


# -- reading the request -----------------------------------------------------------------


def _system(req: ScriptRequest) -> str:
    return next((m.content or "" for m in req.messages if m.role == "system"), "")


def _own_calls(messages: list[ChatMessage], prefix: str) -> int:
    """Scripted tool calls this side made (its messages are "assistant" in its own view);
    calls of a task's initial message history do not count."""
    return sum(1 for m in messages if m.role == "assistant" for c in m.tool_calls or [] if c.id.startswith(prefix))


def _last(messages: list[ChatMessage], role: str) -> ChatMessage | None:
    return next((m for m in reversed(messages) if m.role == role), None)


def _latest(pattern: re.Pattern[str], messages: list[ChatMessage], role: str) -> int:
    for m in reversed(messages):
        if m.role == role and m.content and (hit := pattern.search(m.content)):
            return int(hit.group(1))
    return 0


# -- the user simulator ------------------------------------------------------------------


def _user(req: ScriptRequest, rng: random.Random, domain: str, task_id: str, mode: str) -> ScriptReply | None:
    task = find_task(domain, task_id)
    if task is None:
        return None
    ref = f"<<ref:{domain}/{task_id}>>"
    msgs = [m for m in req.messages if m.role != "system"]
    spoke = [m for m in msgs if m.role == "assistant" and m.content]  # the user's own texts
    if mode == "idle" and spoke:
        return ScriptReply(content="Alright, thank you anyway. ###STOP###")
    if not spoke:
        if mode == "nothing":
            return ScriptReply(content="Never mind, I will call back later. ###STOP###")
        return ScriptReply(content=_text(rng, f"Hi, I need some help with my account. {ref}"))
    if mode == "transfer":
        return ScriptReply(content="I would rather talk to a human agent. ###TRANSFER###")
    if mode == "out_of_scope":
        return ScriptReply(content="Actually, my question is about something else entirely. ###OUT-OF-SCOPE###")
    if mode == "chat":
        return ScriptReply(content=_text(rng, "Could you explain that again?"))
    actions, _ = gold(task)
    user_actions = [a for a in actions if a.get("requestor") == "user"]
    done = _own_calls(msgs, "call_u")
    agent = _last(msgs, "user")  # the assistant's last text (flipped)
    need = _latest(NEED, msgs, "user")
    if msgs[-1].role == "tool" or (agent is not None and NEED.search(agent.content or "")):
        if done < min(need, len(user_actions)):
            a = user_actions[done]
            return ScriptReply(tool_calls=[_call(f"call_u{done}", a["name"], a.get("arguments") or {})])
        return ScriptReply(content=f"[done {done}] I did that on my phone. {ref}")
    if agent is not None and ALL_DONE in (agent.content or ""):
        return ScriptReply(content="Thank you, that is all. ###STOP###")
    return ScriptReply(content=f"[done {done}] {_text(rng, 'Please go on.', 4, 12)} {ref}")


# -- the assistant -----------------------------------------------------------------------


def _assistant(req: ScriptRequest, rng: random.Random, domain: str, task_id: str, mode: str) -> ScriptReply | None:
    task = find_task(domain, task_id)
    if task is None:
        return None
    msgs = [m for m in req.messages if m.role != "system"]
    actions, info = gold(task)
    if mode == "sloppy":
        agent_idx = [i for i, a in enumerate(actions) if a.get("requestor", "assistant") == "assistant"]
        actions = [a for i, a in enumerate(actions) if not agent_idx or i != agent_idx[-1]]
        info = []
    made = _own_calls(msgs, "call_a")
    if mode == "errors":
        made = _own_calls(msgs, "call_e")
        if msgs[-1].role == "tool" and made >= 12:
            return ScriptReply(content="I am sorry, the system keeps failing.")
        choices: list[tuple[str | None, dict[str, Any]]] = [("lookup_everything", {"query": "all"}),
                                                            (None, {"no_such_argument": 1})]
        bogus = rng.choice(choices)
        name = bogus[0] or _first_tool(req)
        return ScriptReply(tool_calls=[_call(f"call_e{made}", name, bogus[1])])
    if mode == "chat":
        return ScriptReply(content=_text(rng, "Let me think about your request.", 20, 80))
    if mode == "idle":
        return ScriptReply(content="I am sorry, I cannot help with that.")
    if mode == "detour" and _own_calls(msgs, "call_x") == 0:  # a failed call first: bad arguments
        return ScriptReply(tool_calls=[_call("call_x0", _first_tool(req), {"id": "does-not-exist"})])
    positions = [i for i, a in enumerate(actions) if a.get("requestor", "assistant") == "assistant"]
    users_done = _latest(DONE, msgs, "user")
    if made < len(positions):
        p = positions[made]
        before = sum(1 for a in actions[:p] if a.get("requestor") == "user")
        if users_done >= before:
            a = actions[p]
            return ScriptReply(tool_calls=[_call(f"call_a{made}", a["name"], a.get("arguments") or {})])
        return ScriptReply(content=f"Please do the following on your side now. [need {before}]")
    total_user = sum(1 for a in actions if a.get("requestor") == "user")
    if users_done < total_user:
        return ScriptReply(content=f"Please do the following on your side now. [need {total_user}]")
    said = " ".join(info)
    return ScriptReply(content=f"{said} Your request has been handled. {ALL_DONE}".strip())


def _first_tool(req: ScriptRequest) -> str:
    for tool in req.tools or []:
        name = tool.get("function", {}).get("name", "")
        if name.startswith("get_"):
            return name
    return (req.tools or [{"function": {"name": "unknown_tool"}}])[0]["function"]["name"]


# -- entry points ------------------------------------------------------------------------


def _route(req: ScriptRequest, rng: random.Random, fixed: str = "") -> ScriptReply | None:
    """Answer as the user simulator or the assistant, in the ``fixed`` mode or the task's own."""
    system = _system(req)
    hit = TASK_ID.search(system)
    if hit is not None:  # the user simulator
        domain, task_id = hit.group(1), hit.group(2)
        return _user(req, rng, domain, task_id, fixed or _mode(f"{domain}/{task_id}", req.seed))
    for m in req.messages:  # the assistant: the user's first message names the task
        if m.role == "user" and m.content and (ref := REF.search(m.content)):
            domain, task_id = ref.group(1), ref.group(2)
            return _assistant(req, rng, domain, task_id, fixed or _mode(f"{domain}/{task_id}", req.seed))
    if "<policy>" in system:  # no reference (e.g. a task starting from a message history)
        return ScriptReply(content=f"I have handled your request. {ALL_DONE}")
    return None


def oracle(req: ScriptRequest, rng: random.Random) -> ScriptReply | None:
    """Gold replay: reward 1.0 on every task tau2's evaluator can score."""
    return _route(req, rng, "oracle")


def respond(req: ScriptRequest, rng: random.Random) -> ScriptReply | None:
    """The default mix of behaviours (see the module docstring)."""
    return _route(req, rng)


def idle(req: ScriptRequest, rng: random.Random) -> ScriptReply | None:
    """A do-nothing agent: it answers the user's request without acting; the user then stops."""
    return _route(req, rng, "idle")
