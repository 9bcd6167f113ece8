"""The SLURM side of the plan: bind addresses, resources per component, hetjob packing."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurmgen.agents.nr.conf import NRConf
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.launchers.resources import directives, job_conf, submitit_params
from slurmgen.launchers.slurm import pack_units
from slurmgen.run.plan import llm_spec, make_plan

RUN = Path("/shared/run")


def conf(**cluster: object) -> SlurmgenConf:
    c = SlurmgenConf(workflow=NRConf())
    c.cluster.kind = "slurm"
    for k, v in cluster.items():
        setattr(c.cluster, k, v)
    return c


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_on_slurm_registry_and_servers_bind_to_the_node_address() -> None:
    plan = make_plan(conf(), RUN, python="py")
    assert _arg(plan.registry.argv, "--host") == "auto"
    assert all(_arg(s.argv, "--host") == "auto" for s in plan.services)
    assert [p.index for p in plan.peers] == [0, 1]
    assert [s.index for s in plan.services] == [0, 1]


def test_locally_everything_binds_to_loopback() -> None:
    c = conf()
    c.cluster.kind = "local"
    plan = make_plan(c, RUN, python="py")
    assert _arg(plan.registry.argv, "--host") == "127.0.0.1"
    assert _arg(plan.services[0].argv, "--host") == "127.0.0.1"


def test_a_spec_can_carry_a_shell_variable_as_its_index() -> None:
    spec = llm_spec(conf(), RUN, "${SLURM_ARRAY_TASK_ID}", python="py")
    assert spec.name == "llm-${SLURM_ARRAY_TASK_ID}" and spec.index == -1


def test_component_resources_default_to_the_cluster_wide_partition_account_qos() -> None:
    c = conf(partition="cpu", account="proj", qos="high")
    c.llm.slurm.partition = "gpu"
    c.llm.slurm.gpus_per_node = 2
    c.llm.slurm.extra_directives = ["--constraint=a100"]
    assert job_conf(c, "llm").partition == "gpu"
    assert job_conf(c, "peer").partition == "cpu"
    assert directives(c, "llm") == ["--partition=gpu", "--account=proj", "--qos=high", "--time=60",
                                             "--cpus-per-task=2", "--gpus-per-node=2", "--constraint=a100"]
    params = submitit_params(c, "llm")
    assert params["partition"] == "gpu" and params["gpus_per_node"] == 2 and params["job_name"] == "slurmgen-llm"
    assert params["setup"][0] == "#SBATCH --constraint=a100"


def test_unknown_component_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: registry, peer, toolpool, llm"):
        job_conf(conf(), "gpu")


def test_hetjob_units_pair_a_replica_with_a_peer() -> None:
    c = conf(hetjob=True)
    c.run.peers = 3
    c.llm.replicas = 2
    plan = make_plan(c, RUN, python="py")
    units = pack_units(c, plan.services, plan.peers)
    assert [[s.name for s in u] for u in units] == [["llm-0", "peer-0"], ["llm-1", "peer-1"], ["peer-2"]]


def test_hetjob_refuses_more_replicas_than_peers() -> None:
    c = conf(hetjob=True)
    c.llm.replicas = 3
    plan = make_plan(c, RUN, python="py")
    with pytest.raises(ConfigError, match="llm.replicas=3 must be <= run.peers=2"):
        pack_units(c, plan.services, plan.peers)


def test_an_unknown_cluster_kind_names_the_valid_ones(tmp_path: Path) -> None:
    from slurmgen.run.launcher import make_launcher
    from slurmgen.rundir import RunDir

    with pytest.raises(ConfigError, match="valid: local, slurm"):
        make_launcher(conf(kind="pbs"), RunDir(tmp_path))
