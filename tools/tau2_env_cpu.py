"""CPU per task of tau2's environment work, slurmgen's way and tau2 runner's way.

    python tools/tau2_env_cpu.py airline [N]

For the first N tasks (default 10) of the domain's base split, the gold actions are run
and the result evaluated twice, and the CPU (``time.process_time``) of each way is
averaged per task:

- slurmgen: ``domain.open_session`` (the tool-pool session), one ``step`` per action,
  ``domain.evaluate`` (tau2's ``evaluate_simulation`` over slurmgen's environments);
- tau2's runner: an environment from tau2's registry (what its orchestrator builds per
  simulation), the same actions, ``evaluate_simulation`` with tau2's own domain.

The database parse at process start is not counted (both ways pay it once). Prints
both figures and whether the rewards are equal on every task.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any


def history(task: dict[str, Any], step: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    from slurmgen.agents.tau2 import domain

    turns: list[dict[str, Any]] = [{"role": "assistant", "content": domain.GREETING},
                                   {"role": "user", "content": "hello"}]
    for i, action in enumerate(task["evaluation_criteria"].get("actions") or []):
        call = {"id": f"c{i}", "name": action["name"], "arguments": action.get("arguments") or {},
                "requestor": action.get("requestor", "assistant")}
        turns.append({"role": call["requestor"], "content": None, "tool_calls": [call]})
        turns.append({"role": "env", "results": step(call)})
    said = " ".join(task["evaluation_criteria"].get("communicate_info") or []) or "Done."
    return [*turns, {"role": "assistant", "content": said}, {"role": "user", "content": "Thanks ###STOP###"}]


def slurmgen_way(dom: str, row: dict[str, Any], task: Any) -> float:
    from slurmgen.agents.tau2 import domain

    session = domain.open_session({"domain": dom, "initial_state": row.get("initial_state")})
    return float(domain.evaluate(dom, task, history(row, lambda c: session.call("step", {"calls": [c]})),
                                 "user_stop")["reward"])


def runner_way(dom: str, row: dict[str, Any], task: Any) -> float:
    from tau2.data_model.message import ToolCall
    from tau2.data_model.simulation import SimulationRun, TerminationReason
    from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
    from tau2.registry import registry

    from slurmgen.agents.tau2 import domain

    env = registry.get_env_constructor(dom)()
    if task.initial_state is not None:
        env.set_state(task.initial_state.initialization_data, task.initial_state.initialization_actions,
                      task.initial_state.message_history or [])

    def step(call: dict[str, Any]) -> list[dict[str, Any]]:
        msg = env.get_response(ToolCall(**call))
        return [{"id": msg.id, "content": msg.content, "error": bool(msg.error), "requestor": call["requestor"]}]

    sim = SimulationRun(id="x", task_id=task.id, start_time="", end_time="", duration=0.0,
                        termination_reason=TerminationReason("user_stop"),
                        messages=domain.to_tau2_messages(history(row, step)))
    return float(evaluate_simulation(simulation=sim, task=task, evaluation_type=EvaluationType.ALL,
                                     solo_mode=False, domain=dom).reward)


def main(argv: list[str]) -> int:
    from tau2.registry import registry

    from slurmgen.agents.tau2 import domain

    dom, n = argv[0], int(argv[1]) if len(argv) > 1 else 10
    rows = domain.load_tasks(dom, "base")[:n]
    domain.environment(dom)  # the parse at process start, both ways
    registry.get_env_constructor(dom)()
    cpu = {"slurmgen": 0.0, "runner": 0.0}
    equal = True
    for row in rows:
        task = domain.parse_task(json.dumps(row).encode())
        rewards = []
        for name, way in (("slurmgen", slurmgen_way), ("runner", runner_way)):
            t0 = time.process_time()
            rewards.append(way(dom, row, task))
            cpu[name] += time.process_time() - t0
        equal = equal and rewards[0] == rewards[1]
    print(f"{dom}: {len(rows)} tasks; environment CPU per task: slurmgen {cpu['slurmgen'] / len(rows) * 1e3:.1f} ms, "
          f"tau2 runner's way {cpu['runner'] / len(rows) * 1e3:.1f} ms; rewards equal on every task: {equal}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
