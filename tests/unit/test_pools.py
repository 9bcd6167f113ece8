"""LLM pools in the config: the role mapping, what starts, what is refused, how jobs are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from slurmgen.agents.coral.conf import CoralConf
from slurmgen.config import pools
from slurmgen.config.bounds import check_bounds
from slurmgen.config.load import register_all, typed
from slurmgen.config.overrides import check_overrides, open_keys
from slurmgen.config.types import LLMConf, SlurmgenConf
from slurmgen.config.workflows import get_workflow
from slurmgen.errors import ConfigError
from slurmgen.launchers.resources import job_conf, submitit_params
from slurmgen.launchers.slurm import pack_units
from slurmgen.run.plan import make_plan
from slurmgen.run.resume import differences

RUN = Path("/shared/run")


def two_pools(**teacher: object) -> SlurmgenConf:
    c = SlurmgenConf(workflow=CoralConf())
    c.llms["teacher"] = LLMConf(model="sim-llama-3.1-70b", replicas=1, **teacher)  # type: ignore[arg-type]
    c.workflow.role_llm = {"teacher": "teacher"}
    return c


def cli(*overrides: str) -> SlurmgenConf:
    """The config `python -m slurmgen <overrides>` composes."""
    check_overrides(list(overrides))
    register_all()
    with initialize_config_module("slurmgen.configs", version_base="1.3"):
        return typed(compose("config", overrides=open_keys(list(overrides))))


def test_without_llms_every_role_uses_the_default_pool() -> None:
    c = SlurmgenConf(workflow=CoralConf())
    assert list(pools.used(c)) == ["default"]
    assert {pools.role_pool(c, r) for r in get_workflow(c.workflow.name).roles} == {"default"}
    plan = make_plan(c, RUN, python="py")
    assert [s.name for s in plan.services] == ["llm-0", "llm-1"]


def test_a_mapped_role_gets_its_pool_and_both_pools_start() -> None:
    c = two_pools()
    assert pools.role_pool(c, "teacher") == "teacher" and pools.role_pool(c, "student") == "default"
    plan = make_plan(c, RUN, python="py")
    assert [(s.name, s.pool) for s in plan.services] == [("llm-0", "default"), ("llm-1", "default"),
                                                         ("llm-teacher-0", "teacher")]
    teacher = plan.services[-1].argv
    assert teacher[teacher.index("--pool") + 1] == "teacher"
    assert teacher[teacher.index("--model") + 1] == "sim-llama-3.1-70b"


def test_the_default_pool_does_not_start_when_every_role_maps_elsewhere() -> None:
    c = two_pools()
    c.workflow.role_llm = {r: "teacher" for r in get_workflow(c.workflow.name).roles}
    assert list(pools.used(c)) == ["teacher"]
    assert [s.name for s in make_plan(c, RUN, python="py").services] == ["llm-teacher-0"]


@pytest.mark.parametrize("change, message", [
    (lambda c: c.workflow.role_llm.update(teacher="judge"),
     "workflow.role_llm.teacher='judge': no such LLM pool (pools: default, teacher)"),
    (lambda c: c.workflow.role_llm.update(critic="teacher"),
     "workflow 'coral' has no role 'critic' (its roles: teacher, student, extractor, matcher)"),
    (lambda c: c.llms.update(judge=LLMConf()), "llms.judge is used by no role"),
    (lambda c: c.llms.update(default=LLMConf()), "llms.default: the default pool is `llm`"),
    (lambda c: c.llms.update({"Big-Model": LLMConf()}), "llms.Big-Model: a pool name is lowercase"),
    (lambda c: setattr(c.llms["teacher"], "replicas", 0), "llms.teacher.replicas=0 is out of range"),
    (lambda c: setattr(c.llms["teacher"], "backend", "openai"), "llms.teacher.backend=openai needs llms.teacher.urls"),
])
def test_bad_pools_are_refused_before_anything_starts(change, message) -> None:
    c = two_pools()
    change(c)
    with pytest.raises(ConfigError, match="nothing was started") as err:
        check_bounds(c)
    assert message in str(err.value)


def test_each_pool_has_its_own_slurm_job_and_resources() -> None:
    c = two_pools()
    c.cluster.kind = "slurm"
    c.llms["teacher"].slurm.gpus_per_node, c.llms["teacher"].slurm.partition = 4, "gpu"
    assert job_conf(c, "llm-teacher").gpus_per_node == 4 and job_conf(c, "llm").gpus_per_node == 0
    params = submitit_params(c, "llm-teacher")
    assert params["job_name"] == "slurmgen-llm-teacher" and params["partition"] == "gpu"
    plan = make_plan(c, RUN, python="py")
    assert {s.job_component for s in plan.services} == {"llm", "llm-teacher"}


def test_hetjob_units_take_replica_i_of_every_pool() -> None:
    c = two_pools()
    c.cluster.kind, c.cluster.hetjob, c.run.peers = "slurm", True, 3
    plan = make_plan(c, RUN, python="py")
    units = [[s.name for s in u] for u in pack_units(c, plan.services, plan.peers)]
    assert units == [["llm-0", "llm-teacher-0", "peer-0"], ["llm-1", "peer-1"], ["peer-2"]]
    c.llms["teacher"].replicas = 4
    plan = make_plan(c, RUN, python="py")
    with pytest.raises(ConfigError, match=r"llms\.teacher\.replicas=4 must be <= run\.peers=3"):
        pack_units(c, plan.services, plan.peers)


def test_the_preset_maps_the_teacher_to_a_70b_pool() -> None:
    c = cli("workflow=coral", "llms=teacher_student")
    assert c.llm.model == "sim-llama-3.1-8b" and c.llms["teacher"].model == "sim-llama-3.1-70b"
    assert c.llms["teacher"].profile == "4xa100-llama3.1-70b" and c.llms["teacher"].replicas == 2  # a default
    assert c.workflow.role_llm == {"teacher": "teacher"}
    check_bounds(c)


def test_pools_and_mappings_from_the_command_line_need_no_plus() -> None:
    c = cli("workflow=coral", "llms.judge.model=big", "llms.judge.slurm.gpus_per_node=8",
            "workflow.role_llm.teacher=judge")
    assert c.llms["judge"].model == "big" and c.llms["judge"].slurm.gpus_per_node == 8
    assert c.llms["judge"].backend == "sim"  # LLMConf's default
    assert c.workflow.role_llm == {"teacher": "judge"}


def test_a_misspelt_pool_key_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'llms\.judge\.modle'; valid keys of llms\.judge: "
                                          r"llms\.judge\.backend, llms\.judge\.model,"):
        check_overrides(["llms.judge.modle=x"])


def test_a_resume_may_not_change_a_pools_model() -> None:
    old = {"llms": {"teacher": {"model": "a", "replicas": 2}}}
    assert differences(old, {"llms": {"teacher": {"model": "b", "replicas": 2}}}) == ["llms.teacher.model: 'a' -> 'b'"]
    assert differences(old, {"llms": {"teacher": {"model": "a", "replicas": 8}}}) == []
