"""Resources that fit the cluster: sinfo rows parsed, requests no node can hold refused
naming job, key, value and the largest node, ``auto`` sizes resolved (launchers/fit.py),
for slurmgen's job arrays and for the driver job of ``hydra/launcher=submitit``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydra_plugins.slurmgen_launcher import driver_ask, fit_driver
from slurmgen.agents.nr.conf import NRConf
from slurmgen.config.types import LLMConf, SlurmgenConf, SlurmJobConf
from slurmgen.errors import ConfigError
from slurmgen.launchers import fit
from slurmgen.launchers.fit import Ask, DoesNotFit, parse_sinfo
from slurmgen.launchers.resources import submitit_params

# the project's own cluster (tools/slurm_cluster.sh): 3 nodes x 4 CPUs x 7231 MB
LOCAL = parse_sinfo("node1|debug*|4|7231|(null)|infinite\nnode2|debug*|4|7231|(null)|infinite\n"
                    "node3|debug*|4|7231|(null)|infinite\n")
# a site: CPU nodes of two sizes (default partition), GPU nodes of two kinds, a short debug partition
SITE = parse_sinfo("""\
c1|cpu*|32|128000|(null)|1-00:00:00
c2|cpu*|64|256000|(null)|1-00:00:00
g1|gpu|48|512000|gpu:a100:4(S:0-1)|2-00:00:00
g2|gpu|96|1024000|gpu:h100:8,shard:16|2-00:00:00
d1|debug|8|16000|(null)|30:00
""")


def ask(job: str = "slurmgen-llm", where: str = "llm.slurm", **res: object) -> Ask:
    return Ask(job, where, SlurmJobConf(**res))  # type: ignore[arg-type]


def refusal(asks: list[Ask], nodes: list[fit.Node]) -> str:
    with pytest.raises(DoesNotFit) as err:
        fit.fit(asks, nodes)
    return str(err.value)


# -- sinfo ---------------------------------------------------------------------------------
def test_sinfo_rows_give_cpus_memory_gpus_time_limit_and_the_default_partition() -> None:
    assert [(n.name, n.partition, n.cpus, n.mem_mb, n.gpus, n.time_limit_min, n.default) for n in SITE] == [
        ("c1", "cpu", 32, 128000, 0, 1440, True), ("c2", "cpu", 64, 256000, 0, 1440, True),
        ("g1", "gpu", 48, 512000, 4, 2880, False), ("g2", "gpu", 96, 1024000, 8, 2880, False),
        ("d1", "debug", 8, 16000, 0, 30, False)]
    assert LOCAL[0].time_limit_min is None and LOCAL[0].default


@pytest.mark.parametrize(("gres", "gpus"), [("(null)", 0), ("gpu:2", 2), ("gpu:a100:4(S:0,1)", 4), ("gpu", 1),
                                            ("gpu:a100:2,gpu:v100:1,mps:100", 3), ("shard:8", 0)])
def test_gpus_are_counted_from_the_gres(gres: str, gpus: int) -> None:
    assert fit.gres_gpus(gres) == gpus


@pytest.mark.parametrize(("text", "minutes"), [("infinite", None), ("UNLIMITED", None), ("5", 5), ("30:00", 30),
                                               ("2:00:00", 120), ("1-12:00:00", 2160), ("0:30", 1)])
def test_time_limits_in_minutes(text: str, minutes: int | None) -> None:
    assert fit.time_limit(text) == minutes


def test_an_unreadable_sinfo_line_names_the_line_and_the_format() -> None:
    with pytest.raises(Exception, match="cannot read sinfo's line 'node1 debug 4'"):
        parse_sinfo("node1 debug 4\n")


@pytest.mark.parametrize(("text", "mb"), [("16G", 16384), ("8000", 8000), ("8000M", 8000), ("512K", 1), ("1T", 1048576),
                                          ("8GB", 8192), ("1.5g", 1536)])
def test_memory_sizes_read_as_sbatch_reads_them(text: str, mb: int) -> None:
    assert fit.mem_mb(text) == mb


# -- refusals ------------------------------------------------------------------------------
def test_more_memory_than_any_node_is_refused_naming_job_key_value_and_largest_node() -> None:
    msg = refusal([ask(mem="16G")], LOCAL)
    assert ("the slurmgen-llm jobs ask llm.slurm.mem=16G but the largest node of partition debug has 7231 MB; "
            "lower it or pick another partition") in msg
    assert "nothing was submitted" in msg


def test_cpus_gpus_and_time_over_the_partition_are_each_named() -> None:
    msg = refusal([ask(partition="debug", cpus_per_task=16, gpus_per_node=1, time_min=60)], SITE)
    assert "llm.slurm.cpus_per_task=16 but the largest node of partition debug has 8 CPUs" in msg
    assert "llm.slurm.gpus_per_node=1 but no node of partition debug has a GPU" in msg
    assert "llm.slurm.time_min=60 (minutes) but partition debug allows at most 30 minutes" in msg


def test_every_job_that_does_not_fit_is_named_at_once() -> None:
    msg = refusal([ask(gpus_per_node=2), ask("slurmgen-peer", "cluster.peer", mem="300G"),
                   ask("slurmgen-toolpool", "cluster.toolpool")], SITE)
    assert "slurmgen-llm jobs ask llm.slurm.gpus_per_node=2 but no node of partition cpu has a GPU" in msg
    assert "slurmgen-peer jobs ask cluster.peer.mem=300G but the largest node of partition cpu has 256000 MB" in msg
    assert "toolpool" not in msg


def test_keys_that_fit_alone_but_not_together_name_the_node_shapes() -> None:
    nodes = parse_sinfo("a|p*|64|64000|gpu:8|infinite\nb|p*|128|512000|(null)|infinite")
    msg = refusal([ask(gpus_per_node=8, mem="100G")], nodes)
    assert ("the slurmgen-llm jobs ask llm.slurm.cpus_per_task=1, llm.slurm.mem=100G, llm.slurm.gpus_per_node=8"
            " but no node of partition p has all of it at once (its nodes: 128 CPUs / 512000 MB / 0 GPUs; "
            "64 CPUs / 64000 MB / 8 GPUs)") in msg
    assert fit.fit([ask(gpus_per_node=8, mem="60G")], nodes)[0].mem == "60G"


def test_an_unknown_partition_lists_the_partitions() -> None:
    msg = refusal([ask(partition="a100")], SITE)
    assert "llm.slurm.partition=a100 but the cluster has no partition a100; partitions: cpu, debug, gpu" in msg


def test_no_partition_and_no_default_partition_says_which_key_to_set() -> None:
    nodes = parse_sinfo("n1|a|4|1000|(null)|infinite\nn2|b|4|1000|(null)|infinite")
    assert "set llm.slurm.partition (partitions: a, b)" in refusal([ask()], nodes)


def test_a_job_may_name_several_partitions_and_fits_if_one_holds_it() -> None:
    assert fit.fit([ask(partition="debug,gpu", gpus_per_node=1)], SITE)[0].gpus_per_node == 1


@pytest.mark.parametrize(("res", "said"), [({"mem": "8 GB"}, "llm.slurm.mem=8 GB: not a size"),
                                           ({"cpus_per_task": "four"}, "llm.slurm.cpus_per_task=four: not a CPU"),
                                           ({"cpus_per_task": 0}, "llm.slurm.cpus_per_task=0: not a CPU")])
def test_malformed_sizes_are_refused_naming_the_key(res: dict, said: str) -> None:
    assert said in refusal([ask(**res)], LOCAL)


def test_what_fits_is_returned_unchanged() -> None:
    res = SlurmJobConf(cpus_per_task=2, mem="2G", time_min=720, extra_directives=["--exclusive"])
    assert fit.fit([Ask("j", "cluster.peer", res)], SITE) == [res]


# -- auto ----------------------------------------------------------------------------------
def test_auto_cpus_take_every_cpu_of_the_smallest_node_that_holds_the_job() -> None:
    assert fit.fit([ask(cpus_per_task="auto")], LOCAL)[0].cpus_per_task == 4
    assert fit.fit([ask(cpus_per_task="auto")], SITE)[0].cpus_per_task == 32  # cpu: 32- and 64-CPU nodes
    assert fit.fit([ask(cpus_per_task="auto", partition="gpu", gpus_per_node=8)], SITE)[0].cpus_per_task == 96


def test_auto_memory_is_the_jobs_share_of_a_node_by_cpus_on_the_node_where_it_is_least() -> None:
    assert fit.fit([ask(mem="auto", cpus_per_task=1)], LOCAL)[0].mem == "1807M"  # 7231 / 4
    assert fit.fit([ask(mem="auto", cpus_per_task=4)], LOCAL)[0].mem == "7231M"
    assert fit.fit([ask(mem="auto", cpus_per_task=16)], SITE)[0].mem == "64000M"  # min(128000/2, 256000/4)
    both = fit.fit([ask(mem="AUTO", cpus_per_task="auto")], SITE)[0]
    assert (both.cpus_per_task, both.mem) == (32, "128000M")


def test_auto_memory_follows_the_gpu_share_when_it_is_larger() -> None:
    res = fit.fit([ask(partition="gpu", gpus_per_node=2, cpus_per_task=8, mem="auto")], SITE)[0]
    assert res.mem == "256000M"  # g1: 2 of 4 GPUs -> half of 512000; g2: 2 of 8 -> a quarter of 1024000


def test_a_job_that_cannot_fit_is_refused_even_with_auto_sizes() -> None:
    assert "llm.slurm.cpus_per_task=8 but the largest node" in refusal([ask(cpus_per_task=8, mem="auto")], LOCAL)


# -- slurmgen's components -----------------------------------------------------------------
def test_fit_conf_checks_the_components_and_their_params_carry_the_sizes() -> None:
    conf = SlurmgenConf(workflow=NRConf())
    conf.cluster.partition, conf.cluster.peer.mem, conf.llm.slurm.cpus_per_task = "cpu", "auto", "auto"
    fitted = fit.fit_conf(conf, ["llm", "peer"], SITE)
    assert submitit_params(fitted, "peer")["mem"] == "4000M"  # 1 of 32 CPUs of a 128000 MB node
    assert submitit_params(fitted, "llm")["cpus_per_task"] == 32
    assert conf.cluster.peer.mem == "auto", "the run's config is left as written"
    conf.llm.slurm.mem = "2T"
    with pytest.raises(DoesNotFit, match="slurmgen-llm jobs ask llm.slurm.mem=2T"):
        fit.fit_conf(conf, ["llm", "peer"], SITE)


def test_each_llm_pool_is_checked_under_its_own_key() -> None:
    conf = SlurmgenConf(workflow=NRConf())
    conf.cluster.partition = "cpu"
    conf.llms["judge"] = LLMConf()
    conf.workflow.role_llm = {"score": "judge"}
    conf.llms["judge"].slurm.mem = "auto"
    fitted = fit.fit_conf(conf, ["llm", "llm-judge"], SITE)
    assert submitit_params(fitted, "llm-judge")["mem"] == "8000M" and conf.llms["judge"].slurm.mem == "auto"
    conf.llms["judge"].slurm.mem = "2T"
    with pytest.raises(DoesNotFit, match="slurmgen-llm-judge jobs ask llms.judge.slurm.mem=2T"):
        fit.fit_conf(conf, ["llm", "llm-judge"], SITE)


def test_an_unresolved_auto_is_never_written_as_a_directive() -> None:
    conf = SlurmgenConf(workflow=NRConf())
    conf.cluster.peer.mem = "auto"
    with pytest.raises(ConfigError, match="cluster.peer: cpus_per_task / mem = auto is sized"):
        submitit_params(conf, "peer")


def test_the_slurm_launcher_refuses_before_its_first_sbatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from slurmgen.launchers import slurm
    from slurmgen.run.plan import make_plan
    from slurmgen.rundir import RunDir

    conf = SlurmgenConf(workflow=NRConf())
    conf.cluster.kind, conf.cluster.peer.mem = "slurm", "64G"
    plan = make_plan(conf, tmp_path)
    launcher = slurm.SlurmLauncher(conf, RunDir(tmp_path))
    submitted: list[str] = []
    monkeypatch.setattr(launcher, "_submit_array", lambda component, group: submitted.append(component))
    monkeypatch.setattr(slurm.fit, "read_nodes", lambda: LOCAL)
    with pytest.raises(DoesNotFit, match="slurmgen-peer jobs ask cluster.peer.mem=64G"):
        launcher.start_all([*plan.services, *plan.peers])
    assert submitted == [], "the LLM array fits but is not submitted either"
    conf.cluster.peer.mem = "auto"
    monkeypatch.setattr(launcher, "_announce", lambda: None)
    launcher.start_all([*plan.services, *plan.peers])
    assert sorted(submitted) == ["llm", "peer"]
    assert launcher.cluster.peer.mem == "1807M" and conf.cluster.peer.mem == "auto"


# -- the driver job (hydra/launcher=submitit) ----------------------------------------------
DRIVER = {"name": "slurmgen-driver", "timeout_min": 240, "cpus_per_task": 4, "mem_gb": "auto", "nodes": 1,
          "tasks_per_node": 1, "partition": None, "submitit_folder": "x/%j"}


def test_the_driver_default_fits_the_project_cluster_with_its_share_of_a_node() -> None:
    params = fit_driver(DRIVER, LOCAL)
    assert (params["cpus_per_task"], params["mem_gb"], params["mem"]) == (4, None, "7231M")
    assert fit_driver(DRIVER, SITE)["mem"] == "16000M"  # 4 of 32 CPUs of a 128000 MB node


def test_the_old_driver_default_is_refused_naming_the_launcher_key() -> None:
    with pytest.raises(DoesNotFit) as err:
        fit_driver({**DRIVER, "mem_gb": 8}, LOCAL)
    assert ("the slurmgen-driver jobs ask hydra.launcher.mem_gb=8 but the largest node of partition debug has "
            "7231 MB") in str(err.value)
    with pytest.raises(DoesNotFit, match="hydra.launcher.timeout_min=240 .minutes. but partition debug allows"):
        fit_driver({**DRIVER, "partition": "debug"}, SITE)


def test_driver_sizes_given_as_numbers_or_null_pass_through() -> None:
    params = fit_driver({**DRIVER, "mem_gb": 1, "cpus_per_task": None}, LOCAL)
    assert (params["mem_gb"], params["cpus_per_task"], "mem" in params) == (1, None, False)
    assert driver_ask({**DRIVER, "mem_gb": None}).res.mem == ""
    assert fit_driver({**DRIVER, "cpus_per_task": "auto"}, SITE)["cpus_per_task"] == 32


def test_a_driver_memory_that_is_not_a_number_of_gb_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"hydra.launcher.mem_gb=8G: a number of GB, auto, or null"):
        fit_driver({**DRIVER, "mem_gb": "8G"}, LOCAL)
