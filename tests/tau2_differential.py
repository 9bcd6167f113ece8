"""Differential check of slurmgen's tau2 reward against tau2's own code, without an LLM.

For one task, a *plan* fixes what the assistant and the user say, in order (texts and
tool calls with their ids). The same plan is played twice:

- **tau2**: tau2's own ``Orchestrator`` (its routing, its environment from tau2's
  registry, its ``get_trajectory``) with replay agent/user, then tau2's own
  ``evaluate_simulation(..., EvaluationType.ALL)`` on tau2's own domain name;
- **slurmgen**: slurmgen's real roles and transition (``run_role``; sessions in
  ``LocalPools``), the LLM answering from the same plan; the reward role converts the
  history's Turns and evaluates, exactly as in a run.

Then the termination, the trajectories (role, text, calls, tool results and error
flags) and the whole ``RewardInfo`` must be equal. Three plans per task: ``gold`` (every
gold action, each by its requestor, every ``communicate_info`` string), ``nothing``
(the agent answers without acting), and ``perturbed``: one argument of one gold action
changed (``wrong_arg``; another task's value for that key when there is one), a random
non-empty subset of the other gold actions left out (``subset``), an extra call of an
existing tool without its required arguments (``error_call``), an extra call of a tool
that does not exist (``unknown_tool``), and half the communications. The perturbations
share one trajectory because each plan costs four to six environments (airline: a
0.3 s parse of a 7 MB database each) and two database hashes per side.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import random
from collections.abc import Iterable
from typing import Any

import msgspec

from slurmgen.llm.types import ChatReply, CompletionUsage, ToolFunction
from slurmgen.llm.types import ToolCall as SgToolCall

KINDS = ("gold", "nothing", "perturbed")
PERTURBATIONS = ("wrong_arg", "subset", "error_call", "unknown_tool")
HELLO, HAND_TO_AGENT, HAND_TO_USER = "Hello, I need help.", "Please go ahead.", "Please do that on your side."
STOP = "Thank you. ###STOP###"


class Call(msgspec.Struct):
    id: str
    name: str
    arguments: dict[str, Any]


class Say(msgspec.Struct):
    role: str  # "assistant" | "user"
    content: str | None = None
    calls: list[Call] = []


class Plan(msgspec.Struct):
    kind: str
    says: list[Say]
    applied: list[str] = []  # the perturbations in it: wrong_arg, subset, error_call, unknown_tool
    expect_error: list[str] = []  # ids of calls that must come back with error=True


# -- plans -------------------------------------------------------------------------------


class _Builder:
    """Says in an order tau2's routing allows: a tool call returns to its caller; a text
    hands the turn to the other side."""

    def __init__(self) -> None:
        self.says = [Say("user", HELLO)]
        self.turn = "assistant"

    def call(self, role: str, call: Call) -> None:
        if self.turn != role:
            self.says.append(Say(self.turn, HAND_TO_AGENT if self.turn == "user" else HAND_TO_USER))
            self.turn = role
        self.says.append(Say(role, None, [call]))

    def say(self, role: str, text: str) -> None:
        if self.turn != role:
            self.says.append(Say(self.turn, HAND_TO_AGENT if self.turn == "user" else HAND_TO_USER))
        self.says.append(Say(role, text))
        self.turn = "user" if role == "assistant" else "assistant"


def _plan(kind: str, actions: Iterable[tuple[str, Call]], info: list[str], **kw: Any) -> Plan:
    b = _Builder()
    for requestor, call in actions:
        b.call(requestor, call)
    b.say("assistant", " ".join(info) if info else "Your request is complete.")
    b.say("user", STOP)
    return Plan(kind, b.says, **kw)


def _gold(task: dict[str, Any]) -> tuple[list[tuple[str, Call]], list[str]]:
    criteria = task.get("evaluation_criteria") or {}
    actions = [(a.get("requestor") or "assistant", Call(f"g{i}", a["name"], dict(a.get("arguments") or {})))
               for i, a in enumerate(criteria.get("actions") or [])]
    return actions, list(criteria.get("communicate_info") or [])


def _mutate(value: Any, key: str, pool: dict[str, list[Any]], rng: random.Random) -> Any:
    """Another value of the same kind: another task's value for this key when there is one."""
    others = [v for v in pool.get(key, []) if v != value and type(v) is type(value)]
    if others:
        return rng.choice(others)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value[:-1]
    return None


def _wrong_arg(actions: list[tuple[str, Call]], pool: dict[str, list[Any]],
               rng: random.Random) -> list[tuple[str, Call]] | None:
    candidates = [i for i, (_, c) in enumerate(actions) if c.arguments]
    if not candidates:
        return None
    i = rng.choice(candidates)
    requestor, call = actions[i]
    key = rng.choice(sorted(call.arguments))
    args = dict(call.arguments)
    args[key] = _mutate(args[key], key, pool, rng)
    out = list(actions)
    out[i] = (requestor, Call(call.id, call.name, args))
    return out


def _failing_call(tools: dict[str, list[dict[str, Any]]], rng: random.Random) -> tuple[str, Call]:
    """An existing tool called without its required arguments (tau2 answers "Error: ...")."""
    choices = [(role, t["function"]["name"]) for role, schemas in sorted(tools.items()) for t in schemas
               if t["function"].get("parameters", {}).get("required")]
    role, name = rng.choice(choices)
    return role, Call("err0", name, {})


def _perturbed(actions: list[tuple[str, Call]], info: list[str], tools: dict[str, list[dict[str, Any]]],
               pool: dict[str, list[Any]], rng: random.Random) -> Plan:
    """The gold plan with one argument changed, a random subset of the other actions, an
    extra failing call, an extra call of a tool that does not exist, half the communications."""
    applied: list[str] = []
    drop: set[int] = set()
    wrong = _wrong_arg(actions, pool, rng)
    if wrong is not None:
        applied.append("wrong_arg")
        changed = next(i for i, (a, b) in enumerate(zip(actions, wrong)) if a != b)
        others = [i for i in range(len(actions)) if i != changed]
        drop = set(rng.sample(others, rng.randint(1, len(others)))) if others else set()
        actions = [a for i, a in enumerate(wrong) if i not in drop]
    elif len(actions) >= 2:
        drop = set(rng.sample(range(len(actions)), rng.randint(1, len(actions) - 1)))
        actions = [a for i, a in enumerate(actions) if i not in drop]
    if drop:
        applied.append("subset")
    err_role, err = _failing_call(tools, rng)
    actions.insert(rng.randint(0, len(actions)), (err_role, err))
    ghost = Call("ghost0", "no_such_tool", {"reservation_id": "ABC123"})
    actions.insert(rng.randint(0, len(actions)), (rng.choice(sorted(r for r, t in tools.items() if t)), ghost))
    applied += ["error_call", "unknown_tool"]
    return _plan("perturbed", actions, [s for s in info if rng.random() < 0.5], applied=applied,
                 expect_error=[err.id, ghost.id])


def plans(task: dict[str, Any], tools: dict[str, list[dict[str, Any]]], pool: dict[str, list[Any]],
          seed: str) -> list[Plan]:
    """gold, nothing, perturbed (random choices seeded by ``seed``)."""
    actions, info = _gold(task)
    nothing = Plan("nothing", [Say("user", HELLO), Say("assistant", "Sorry, I cannot help with that."),
                               Say("user", STOP)])
    return [_plan("gold", actions, info), nothing, _perturbed(actions, info, tools, pool, random.Random(seed))]


def argument_pool(tasks: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every gold argument value by key, across a domain's tasks (values for ``wrong_arg``)."""
    pool: dict[str, list[Any]] = collections.defaultdict(list)
    for task in tasks:
        for a in (task.get("evaluation_criteria") or {}).get("actions") or []:
            for k, v in (a.get("arguments") or {}).items():
                if v not in pool[k]:
                    pool[k].append(v)
    return pool


# -- tau2's side ---------------------------------------------------------------------------


class _Replay:
    """tau2 agent and user at once: each answers with its next message of the plan."""

    def __init__(self, role: str, says: list[Say]) -> None:
        self.role = role
        self.queue = collections.deque(s for s in says if s.role == role)

    def generate_next_message(self, message: Any, state: Any) -> tuple[Any, Any]:
        from tau2.data_model.message import AssistantMessage, ToolCall, UserMessage

        say = self.queue.popleft()
        calls = [ToolCall(id=c.id, name=c.name, arguments=copy.deepcopy(c.arguments), requestor=self.role)
                 for c in say.calls] or None
        cls = AssistantMessage if self.role == "assistant" else UserMessage
        return cls(role=self.role, content=say.content, tool_calls=calls), state

    def get_init_state(self, message_history: Any = None) -> None:
        return None

    def is_stop(self, message: Any) -> bool:
        return False

    def set_seed(self, seed: int) -> None:
        pass

    def stop(self, message: Any = None, state: Any = None) -> None:
        pass


def tau2_side(domain: str, task: dict[str, Any], plan: Plan) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """tau2's orchestrator and evaluator: (termination, trajectory, RewardInfo as JSON data)."""
    from tau2.data_model.message import ToolMessage
    from tau2.data_model.tasks import Task
    from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
    from tau2.orchestrator.orchestrator import Orchestrator
    from tau2.registry import registry

    t = Task.model_validate(task)
    env = registry.get_env_constructor(domain)()
    orch = Orchestrator(domain, agent=_Replay("assistant", plan.says), user=_Replay("user", plan.says),  # type: ignore[arg-type]
                        environment=env, task=t, max_steps=200, max_errors=10)
    sim = orch.run()
    info = evaluate_simulation(simulation=sim, task=t, evaluation_type=EvaluationType.ALL, solo_mode=False,
                               domain=domain)
    trajectory: list[dict[str, Any]] = []
    for m in sim.messages:
        if isinstance(m, ToolMessage):
            trajectory.append({"role": "tool", "id": m.id, "content": m.content, "error": m.error,
                               "requestor": m.requestor})
        else:
            calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls or []]
            trajectory.append({"role": m.role, "content": m.content or None, "calls": calls})
    return sim.termination_reason.value, trajectory, json.loads(info.model_dump_json())


# -- slurmgen's side -----------------------------------------------------------------------


class PlanLLM:
    """slurmgen's LLM client for both roles, answering from the plan (``sticky_key`` says who asks)."""

    def __init__(self, says: list[Say]) -> None:
        self.queues = {r: collections.deque(s for s in says if s.role == r) for r in ("assistant", "user")}

    async def chat(self, messages: Any, *, sampling: Any, seed: int | None = None, tools: Any = None,
                   tool_choice: object = None, response_format: Any = None, sticky_key: str | None = None) -> ChatReply:
        say = self.queues["user" if (sticky_key or "").startswith("user:") else "assistant"].popleft()
        calls = [SgToolCall(id=c.id, function=ToolFunction(name=c.name, arguments=json.dumps(c.arguments)))
                 for c in say.calls]
        return ChatReply(content=say.content or "", tool_calls=calls, usage=CompletionUsage(prompt_tokens=1, completion_tokens=1))


def slurmgen_side(domain: str, task: dict[str, Any], plan: Plan) -> tuple[str, list[dict[str, Any]], dict[str, Any] | str]:
    """slurmgen's roles through the reward role: (reason, trajectory, RewardInfo or the failure)."""
    from slurmgen.agents.tau2.flow import has_tool_calls
    from slurmgen.agents.tau2.history import env_results, tool_calls
    from tests.tau2_harness import make_conf, run_task

    orch = asyncio.run(run_task(make_conf(domain=domain), task, None, llm=PlanLLM(plan.says)))
    trajectory: list[dict[str, Any]] = []
    reward: dict[str, Any] | str = f"{orch.status}: {orch.reason}"
    for turn in orch.history:
        if turn.role == "env":
            trajectory += [{"role": "tool", "id": r.id, "content": r.content, "error": r.error,
                            "requestor": r.requestor} for r in env_results(turn)]
        elif turn.role == "reward":
            reward = msgspec.json.decode(turn.data)
            assert orch.metrics["reward"] == reward["reward"]
        else:
            calls = [{"id": c.id, "name": c.function.name, "arguments": json.loads(c.function.arguments)}
                     for c in (tool_calls(turn) if has_tool_calls(turn) else [])]
            trajectory.append({"role": turn.role, "content": turn.content or None, "calls": calls})
    return orch.reason, trajectory, reward


# -- the comparison ------------------------------------------------------------------------


class Outcome(msgspec.Struct):
    task: str
    kind: str
    applied: list[str]
    reward: float | None  # tau2's
    problems: list[str]


def compare(domain: str, task: dict[str, Any], plan: Plan) -> Outcome:
    end, traj, info = tau2_side(domain, task, plan)
    s_end, s_traj, s_info = slurmgen_side(domain, task, plan)
    problems = []
    if s_end != end:
        problems.append(f"termination: slurmgen {s_end!r} != tau2 {end!r}")
    if s_traj != traj:
        first = next((i for i, (a, b) in enumerate(zip(s_traj, traj)) if a != b), min(len(s_traj), len(traj)))
        problems.append(f"trajectory differs at message {first}: slurmgen {s_traj[first:first + 1]} "
                        f"!= tau2 {traj[first:first + 1]} (lengths {len(s_traj)}, {len(traj)})")
    if s_info != info:
        keys = sorted(k for k in set(info) | set(s_info if isinstance(s_info, dict) else {})
                      if not isinstance(s_info, dict) or s_info.get(k) != info.get(k))
        problems.append(f"RewardInfo differs in {keys}: slurmgen {s_info if isinstance(s_info, str) else ''} "
                        f"reward {info.get('reward')} (tau2)")
    errors = {m["id"] for m in traj if m["role"] == "tool" and m["error"]}
    problems += [f"call {i} should have failed in tau2" for i in plan.expect_error if i not in errors]
    return Outcome(task["id"], plan.kind, plan.applied, info.get("reward"), problems)


def check_chunk(args: tuple[str, list[str], str]) -> list[Outcome]:
    """``check_tasks`` for a process pool."""
    return check_tasks(*args)


def check_tasks(domain: str, task_ids: list[str], split: str) -> list[Outcome]:
    """Every plan of every task in ``task_ids`` (run in a worker process)."""
    from slurmgen.agents.tau2 import domain as sg_domain

    tasks = sg_domain.load_tasks(domain, split)
    pool = argument_pool(tasks)
    agent, user = sg_domain.tool_schemas(domain)
    tools = {"assistant": agent, "user": user}
    out = []
    for task in (t for t in tasks if t["id"] in set(task_ids)):
        for plan in plans(task, tools, pool, f"{domain}/{task['id']}"):
            out.append(compare(domain, task, plan))
    return out


# -- a finished run's records ------------------------------------------------------------


def tau2_messages(history: list[Any]) -> list[Any]:
    """A record's turns as tau2 messages, written apart from slurmgen's conversion (tool-call
    arguments that are not a JSON object count as ``{}``, slurmgen's documented rule)."""
    from tau2.data_model.message import (
        AssistantMessage,
        ToolCall,
        ToolMessage,
        UserMessage,
    )

    out: list[Any] = []
    for turn in history:
        if turn.role == "env":
            out += [ToolMessage(id=r["id"], role="tool", content=r["content"], error=r.get("error", False),
                                requestor=r.get("requestor", "assistant")) for r in msgspec.json.decode(turn.data)["results"]]
        elif turn.role in ("assistant", "user"):
            calls = []
            for c in msgspec.json.decode(turn.tool_calls) or []:
                try:
                    args = json.loads(c["function"].get("arguments") or "{}")
                except ValueError:
                    args = {}
                calls.append(ToolCall(id=c["id"], name=c["function"]["name"],
                                      arguments=args if isinstance(args, dict) else {}, requestor=turn.role))
            cls = AssistantMessage if turn.role == "assistant" else UserMessage
            out.append(cls(role=turn.role, content=turn.content or None, tool_calls=calls or None))
    for i, m in enumerate(out):
        m.turn_idx = i
    return out


def verify_record(domain: str, task: dict[str, Any], record: Any) -> tuple[float, list[str]]:
    """tau2's own evaluation of a record's trajectory, and how the record's reward differs from it."""
    from tau2.data_model.simulation import SimulationRun, TerminationReason
    from tau2.data_model.tasks import Task
    from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation

    state = json.loads(bytes(record.output))
    sim = SimulationRun(id="check", task_id=task["id"], start_time="", end_time="", duration=0.0,
                        termination_reason=TerminationReason(state["termination"]),
                        messages=tau2_messages([t for t in record.history if t.role != "reward"]))
    info = json.loads(evaluate_simulation(simulation=sim, task=Task.model_validate(task),
                                          evaluation_type=EvaluationType.ALL, solo_mode=False,
                                          domain=domain).model_dump_json())
    recorded = next((msgspec.json.decode(t.data) for t in record.history if t.role == "reward"), None)
    problems = []
    if recorded != info:
        problems.append(f"{record.task_id}: RewardInfo differs (tau2 reward {info['reward']}, "
                        f"record {record.metrics.get('reward')})")
    if record.metrics.get("reward") != info["reward"]:
        problems.append(f"{record.task_id}: metrics.reward {record.metrics.get('reward')} != tau2 {info['reward']}")
    return info["reward"], problems
