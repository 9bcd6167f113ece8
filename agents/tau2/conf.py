"""Configuration of the tau2-bench workflow (tau2's loop, Matrix's four agents).

Every knob is declared here once with its default; YAML only composes. The decisions
where Matrix and tau2 differ are listed in ``agents/tau2/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slurmgen.workflow import ConfigError, Sampling, SlurmgenConf, WorkflowConf, role_backend


@dataclass
class Tau2Conf(WorkflowConf):
    name: str = "tau2"
    tool_roles: list[str] = field(default_factory=lambda: ["assistant", "user"])

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
    agent_sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.0, max_tokens=4096))
    user_sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.0, max_tokens=4096))
    # prepended to both system prompts (Matrix: "Reasoning: high." for gpt-oss); tau2: none
    prompt_prefix: str = ""
    # append the task's "<domain>/<id>" to the user simulator's system prompt (after the
    # scenario): the simulator's scripts (llm.backend=sim) learn the task from it; false = tau2's
    # exact prompt; unset = true only when the user role's pool is the simulator
    task_id_in_user_prompt: bool | None = None
    # the agent's tool_choice: auto (tau2's), required (a tool call every agent turn: not tau2's
    # benchmark, for exercising the tool-call path with a weak model) or none
    agent_tool_choice: str = "auto"

    def resolve(self, conf: SlurmgenConf) -> None:
        if self.agent_tool_choice not in ("auto", "required", "none"):
            raise ConfigError(f"workflow.agent_tool_choice={self.agent_tool_choice!r} is unknown; valid: auto "
                              "(tau2's), required, none")
        if self.task_id_in_user_prompt is None:
            self.task_id_in_user_prompt = role_backend(conf, "user") == "sim"
