"""tau2's user prompt is tau2's own unless the user simulator is slurmgen's simulator, whose
scripts learn the task from the ``<task_id>`` line."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module

from slurmgen.config.load import register_all, typed


def conf_of(*overrides: str):
    register_all()
    with initialize_config_module(config_module="slurmgen.configs", version_base=None):
        return typed(compose(config_name="config", overrides=["workflow=tau2", *overrides]))


@pytest.mark.parametrize(("overrides", "expected"), [
    ((), True),  # llm.backend=sim by default
    (("llm.backend=vllm", "llm.model_path=/m"), False),
    (("llm.backend=openai", "llm.urls=[http://h:1]"), False),
    (("llm.backend=vllm", "llm.model_path=/m", "workflow.task_id_in_user_prompt=true"), True),
    (("workflow.task_id_in_user_prompt=false",), False),
    # the user role on a simulator pool, the agent on a real one
    (("llm.backend=vllm", "llm.model_path=/m", "+llms.usersim.backend=sim", "+llms.usersim.model=s",
      "+workflow.role_llm.user=usersim"), True),
])
def test_task_id_line_only_for_the_simulator(overrides: tuple[str, ...], expected: bool):
    assert conf_of(*overrides).workflow.task_id_in_user_prompt is expected
