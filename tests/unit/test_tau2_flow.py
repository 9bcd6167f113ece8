"""tau2 routing, limits, termination reasons and metrics on hand-made messages (no tau2 needed)."""

from __future__ import annotations

import msgspec
import pytest

from slurmgen.agents.tau2 import WORKFLOW
from slurmgen.agents.tau2.conf import Tau2Conf
from slurmgen.agents.tau2.flow import Tau2State, end_of_step, first_role, metrics, pass_hat_k
from slurmgen.agents.tau2.flow import transition as route
from slurmgen.llm.types import ToolCall, ToolFunction
from slurmgen.protocol import Orchestrator, Turn, Usage
from slurmgen.records import Record
from slurmgen.workflow import Status, Task, close_task


def transition(o: Orchestrator, state: Tau2State | None = None) -> str | None:
    return route(Task(o, None, state or Tau2State()))


def orch(row: dict | None = None) -> Orchestrator:
    return Orchestrator(task_id="t:0", row_id="t", trial=0, seed=1, origin="o",
                        row=msgspec.Raw(msgspec.json.encode(row or {"id": "t"})))


def turn(role: str, content: str = "", calls: int = 0) -> Turn:
    t = Turn(role=role, content=content)
    if calls:
        t.tool_calls = msgspec.Raw(msgspec.json.encode(
            [ToolCall(id=f"c{i}", function=ToolFunction(name="get_user_details")) for i in range(calls)]))
    return t


def test_routing_follows_tau2() -> None:
    o = orch()
    assert transition(o) == "user"  # the user speaks after the greeting the first role seeds
    o.history = [turn("assistant", "Hi! How can I help you today?"), turn("user", "my order")]
    assert transition(o) == "assistant"
    o.history.append(turn("assistant", calls=2))
    assert transition(o) == "env"
    o.history.append(turn("env"))
    assert transition(o) == "assistant"  # back to the caller
    o.history.append(turn("assistant", "Done."))
    assert transition(o) == "user"
    o.history.append(turn("user", calls=1))  # telecom: the user's own tools
    assert transition(o) == "env"
    o.history.append(turn("env"))
    assert transition(o) == "user"


def test_a_termination_goes_to_reward_then_done() -> None:
    o = orch()
    o.history = [turn("assistant", "Hi"), turn("user", "bye ###STOP###")]
    stopped = Tau2State(termination="user_stop", stop="stop")
    assert transition(o, stopped) == "reward"
    o.history.append(turn("reward"))
    assert transition(o, stopped) is None
    o2 = orch()
    o2.status = Status.FAILED
    assert transition(o2) is None


@pytest.mark.parametrize("last,expected", [
    ({"role": "assistant", "content": "Anything else?"}, "user"),
    ({"role": "assistant", "tool_calls": [{"id": "c", "name": "x", "arguments": {}}]}, "env"),
    ({"role": "user", "content": "Please update it."}, "assistant"),
    ({"role": "user", "content": "Thanks ###STOP###"}, "reward"),
    ({"role": "tool", "id": "c", "content": "{}", "requestor": "assistant"}, "assistant"),
    ({"role": "tool", "id": "c", "content": "{}", "requestor": "user"}, "user"),
])
def test_a_message_history_resumes_after_its_last_message(last: dict, expected: str) -> None:
    row = {"id": "t", "initial_state": {"message_history": [{"role": "user", "content": "hi"}, last]}}
    assert first_role(orch(row)) == expected


def test_limits_checked_after_steps_not_bound_for_env_max_steps_then_errors() -> None:
    conf = Tau2Conf(max_steps=3, max_errors=2)
    s = Tau2State(steps=2)
    end_of_step(s, conf, llm=True, to_env=True)  # bound for env: counted, not checked
    assert s.steps == 3 and s.termination == ""
    end_of_step(s, conf, llm=False, to_env=False)
    assert s.termination == "max_steps"
    s = Tau2State(steps=5, errors=2)
    end_of_step(s, conf, llm=False, to_env=False)
    assert s.termination == "too_many_errors"  # checked last, as tau2 does: it wins
    s = Tau2State(steps=0, errors=1)
    end_of_step(s, Tau2Conf(max_errors=2), llm=False, to_env=False)
    assert s.termination == ""


def test_matrix_step_count_counts_llm_calls_only() -> None:
    conf = Tau2Conf(count_env_steps=False)
    s = Tau2State()
    end_of_step(s, conf, llm=False, to_env=False)
    end_of_step(s, conf, llm=True, to_env=False)
    assert s.steps == 1


def test_pass_hat_k() -> None:
    assert pass_hat_k({"a": [True, True], "b": [True, False]}, 1) == pytest.approx(0.75)
    assert pass_hat_k({"a": [True, True], "b": [True, False]}, 2) == pytest.approx(0.5)
    assert pass_hat_k({"a": [True, True, False]}, 2) == pytest.approx(1 / 3)
    assert pass_hat_k({"a": [True]}, 2) == 0.0


def record(row: str, trial: int, reward: float | None, termination: str = "user_stop", stop: str = "stop",
           status: str = "ok") -> Record:
    state = Tau2State(steps=4, errors=1, tool_calls=2, termination=termination, stop=stop, reward=reward)
    return Record(task_id=f"{row}:{trial}", row_id=row, trial=trial, status=status, reason=termination,
                  metrics={} if reward is None else {"reward": reward}, output=msgspec.Raw(msgspec.json.encode(state)),
                  usage={"user": Usage(prompt_tokens=10, completion_tokens=2, requests=1),
                         "assistant": Usage(prompt_tokens=20, completion_tokens=4, requests=1)})


def test_metrics() -> None:
    recs = [record("a", 0, 1.0), record("a", 1, 1.0), record("b", 0, 1.0, stop="transfer"),
            record("b", 1, 0.0, "max_steps", ""), record("c", 0, None, status="failed"), record("c", 1, 0.0,
                                                                                              "too_many_errors", "")]
    m = metrics(recs)
    assert m["reward"] == pytest.approx(3 / 6)
    assert m["pass^1"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["pass^2"] == pytest.approx(1 / 3)
    assert m["termination/user_stop"] == pytest.approx(3 / 6)
    assert m["termination/max_steps"] == m["termination/too_many_errors"] == m["termination/error"] == pytest.approx(1 / 6)
    assert m["stop_token/stop"] == 2 and m["stop_token/transfer"] == 1
    assert m["conv_err"] == 1
    assert m["tokens/assistant/per_task"] == pytest.approx(24) and m["tokens/user/prompt"] == 60


def failed(row: str, trial: int, reason: str, at: float = 0.0) -> Record:
    return Record(task_id=f"{row}:{trial}", row_id=row, trial=trial, status=Status.FAILED, reason=reason, finished_at=at)


def test_infrastructure_failures_count_in_pass_hat_k_and_are_listed_by_reason() -> None:
    """An LLM error after retries or a lost tool session is a failed trial, never a dropped one
    (tau2 1.0.1 dropped them from pass^k); a missing trial is a failure; a duplicate counts once."""
    recs = [record("a", 0, 1.0), record("a", 1, 1.0), record("a", 2, 1.0),
            record("b", 0, 1.0), record("b", 1, 1.0), failed("b", 2, "llm_error: HTTP 503 after 4 attempts"),
            failed("c", 0, "tool_lost: pool member pool-1 died"), failed("c", 1, "llm_error: timeout"),
            failed("c", 2, "tool_lost: pool member pool-0 died"),
            record("d", 0, 1.0), record("d", 1, 0.0),  # trial 2 never written
            record("a", 1, 1.0)]  # at-least-once delivery: a:1 again
    recs[-1].finished_at = 99.0
    m = metrics(recs)
    successes = {"a": [1, 1, 1], "b": [1, 1, 0], "c": [0, 0, 0], "d": [1, 0, 0]}
    assert m["tasks"] == 4 and m["missing_trials"] == 1
    assert m["pass^1"] == pytest.approx((1 + 2 / 3 + 0 + 1 / 3) / 4)
    assert m["pass^2"] == pytest.approx((1 + 1 / 3 + 0 + 0) / 4)
    assert m["pass^3"] == pytest.approx(1 / 4)
    assert m["failed/llm_error"] == 2 and m["failed/tool_lost"] == 2 and m["conv_err"] == 4
    assert m["reward"] == pytest.approx(6 / 11)  # 11 trials written once each, failures score 0
    tau2_metrics = pytest.importorskip("tau2.metrics.agent_metrics")
    for k in (1, 2, 3):  # tau2's own formula on the same successes
        expected = sum(tau2_metrics.pass_hat_k(3, sum(s), k) for s in successes.values()) / 4
        assert m[f"pass^{k}"] == pytest.approx(expected)
    dropped = {"a": [1, 1, 1], "b": [1, 1], "d": [1, 0]}  # tau2 1.0.1: infrastructure errors left out
    assert pass_hat_k(dropped, 2) > m["pass^2"]


def test_state_roundtrip() -> None:
    o = orch()
    assert WORKFLOW.new_task(o).state == Tau2State()
    hop = WORKFLOW.new_task(o)
    hop.state = Tau2State(steps=3, termination="max_steps")
    close_task(hop)
    assert WORKFLOW.new_task(o).state.termination == "max_steps"
