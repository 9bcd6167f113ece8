"""Configuration of the tau2-bench workflow (tau2's loop, Matrix's four agents).

Every knob is declared here once with its default; YAML only composes. The decisions
where Matrix and tau2 differ are listed in ``agents/tau2/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slurmgen.config.types import SamplingConf, WorkflowConf

_PKG = "slurmgen.agents.tau2"


def _roles() -> dict[str, str]:
    return {
        "user": f"{_PKG}.roles:user_role",
        "assistant": f"{_PKG}.roles:assistant_role",
        "env": f"{_PKG}.roles:env_role",
        "reward": f"{_PKG}.roles:reward_role",
    }


@dataclass
class Tau2Conf(WorkflowConf):
    name: str = "tau2"
    roles: dict[str, str] = field(default_factory=_roles)
    transition: str = f"{_PKG}.flow:transition"
    metrics: str = f"{_PKG}.flow:metrics"
    row: str = f"{_PKG}.data:Tau2Task"
    state: str = f"{_PKG}.flow:Tau2State"
    export: str = f"{_PKG}.export:SHAPES"
    sim_script: str = f"{_PKG}.script:respond"
    # llm.script=oracle: replay each task's gold actions and required communications (reward 1);
    # llm.script=idle: a do-nothing agent (answers without acting; the user then stops)
    sim_scripts: dict[str, str] = field(default_factory=lambda: {"oracle": f"{_PKG}.script:oracle",
                                                                 "idle": f"{_PKG}.script:idle"})
    # the built-in dataset: the installed tau2 tasks of workflow.domain in workflow.task_split
    builtin_dataset: str = f"{_PKG}.data:builtin_${{workflow.domain}}__${{workflow.task_split}}"
    toolpool_factory: str = f"{_PKG}.domain:open_session"
    regrade: str = f"{_PKG}.regrade:regrader"

    # airline | retail | telecom | mock (telecom-workflow: telecom with the workflow policy)
    domain: str = "airline"
    # tau2's task split for the built-in dataset: base (every domain's benchmark set; telecom's
    # 114 tasks), train, test, small / full (telecom), or all (every task in tasks.json)
    task_split: str = "base"
    # tau2: a task ends with max_steps after this many steps (user, assistant and env steps)
    max_steps: int = 200
    # tau2 counts every step; false counts LLM calls only (Matrix's step limit)
    count_env_steps: bool = True
    # tau2: a task ends with too_many_errors after this many tool errors
    max_errors: int = 10
    # both LLMs: tau2's temperature 0 (Matrix adds top_p 0.9, max_tokens 25,000)
    agent_sampling: SamplingConf = field(default_factory=lambda: SamplingConf(temperature=0.0, max_tokens=4096))
    user_sampling: SamplingConf = field(default_factory=lambda: SamplingConf(temperature=0.0, max_tokens=4096))
    # prepended to both system prompts (Matrix: "Reasoning: high." for gpt-oss); tau2: none
    prompt_prefix: str = ""
    # append the task's "<domain>/<id>" to the user simulator's system prompt (after the
    # scenario) so scripted simulators (llm.script=oracle) know the task; false = tau2's exact prompt
    task_id_in_user_prompt: bool = True
