"""A component's SLURM resources, from config, as sbatch directives and as submitit
parameters. Pure functions: the sbatch templates and the submitit launcher agree.

Components: ``registry``, ``peer``, ``toolpool`` (their resources in ``cluster.<component>``)
and one per LLM pool, ``llm`` (the default pool: ``llm.slurm``) or ``llm-<name>``
(``llms.<name>.slurm``), as ``slurmgen.config.pools.component`` names them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slurmgen.config import pools
from slurmgen.config.types import SlurmgenConf, SlurmJobConf
from slurmgen.errors import ConfigError

COMPONENTS = ("registry", "peer", "toolpool")  # besides one per LLM pool
AUTO = "auto"  # cpus_per_task / mem sized from the partition's nodes (launchers/fit.py)


def job_conf(conf: SlurmgenConf, component: str) -> SlurmJobConf:
    """The component's job config with partition / account / qos defaulted from the cluster."""
    cluster = conf.cluster
    llm = {pools.component(name): pool for name, pool in pools.declared(conf).items()}
    if component in llm:
        job = llm[component].slurm
    elif component in COMPONENTS:
        job = getattr(cluster, component)
    else:
        raise ConfigError(f"no SLURM job config for component {component!r}; known: "
                          f"{', '.join([*COMPONENTS, *llm])}")
    shared = {k: getattr(job, k) or getattr(cluster, k) for k in ("partition", "account", "qos")}
    return dataclasses.replace(job, **shared)


def job_name(conf: SlurmgenConf, component: str) -> str:
    return f"{conf.cluster.job_prefix}-{component}"


def where(conf: SlurmgenConf, component: str) -> str:
    """The config key of a component's resources, as messages name it: cluster.peer, llms.teacher.slurm."""
    llm = {pools.component(name): name for name in pools.declared(conf)}
    return f"{pools.key(llm[component])}.slurm" if component in llm else f"cluster.{component}"


def with_job(conf: SlurmgenConf, component: str, job: SlurmJobConf) -> SlurmgenConf:
    """A copy of ``conf`` whose ``component`` has the resources ``job`` (e.g. sized by launchers/fit.py)."""
    llm = {pools.component(name): name for name in pools.declared(conf)}
    if component not in llm:
        cluster = dataclasses.replace(conf.cluster)
        setattr(cluster, component, job)  # the component's field of ClusterConf (registry, peers, toolpool ...)
        return dataclasses.replace(conf, cluster=cluster)
    name = llm[component]
    if name == pools.DEFAULT:
        return dataclasses.replace(conf, llm=dataclasses.replace(conf.llm, slurm=job))
    return dataclasses.replace(conf, llms={**conf.llms, name: dataclasses.replace(conf.llms[name], slurm=job)})


def sized_conf(conf: SlurmgenConf, component: str) -> SlurmJobConf:
    """``job_conf`` whose sizes are numbers: an ``auto`` must have been resolved (fit.fit_conf)."""
    job = job_conf(conf, component)
    if AUTO in (str(job.cpus_per_task).strip().lower(), job.mem.strip().lower()):
        raise ConfigError(f"{where(conf, component)}: cpus_per_task / mem = auto is sized from the partition's "
                          "nodes (sinfo) when slurmgen submits; here it needs numbers, e.g. cpus_per_task=4 mem=8G")
    return job


def directives(conf: SlurmgenConf, component: str) -> list[str]:
    """Resource directives (what follows ``#SBATCH ``), site defaults left out."""
    job = sized_conf(conf, component)
    out = [f"--{flag}={value}" for flag, value in
           (("partition", job.partition), ("account", job.account), ("qos", job.qos)) if value]
    out += [f"--time={job.time_min}", f"--cpus-per-task={job.cpus_per_task}"]
    if job.mem:
        out.append(f"--mem={job.mem}")
    if job.gpus_per_node:
        out.append(f"--gpus-per-node={job.gpus_per_node}")
    return out + list(job.extra_directives)


def submitit_params(conf: SlurmgenConf, component: str) -> dict[str, Any]:
    """Parameters for ``submitit.SlurmExecutor.update_parameters`` (one component's jobs).

    Extra directives become ``#SBATCH`` lines at the top of ``setup`` (sbatch reads
    directives until the first command), then the component's shell setup lines.
    """
    job = sized_conf(conf, component)
    params: dict[str, Any] = {
        "job_name": job_name(conf, component), "time": job.time_min, "cpus_per_task": job.cpus_per_task,
        "signal_delay_s": conf.cluster.signal_delay_s, "stderr_to_stdout": True,
        "setup": [f"#SBATCH {d}" for d in job.extra_directives] + list(job.setup),
    }
    for key in ("partition", "account", "qos", "mem"):
        if getattr(job, key):
            params[key] = getattr(job, key)
    if job.gpus_per_node:
        params["gpus_per_node"] = job.gpus_per_node
    return params
