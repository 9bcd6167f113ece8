"""A component's SLURM resources, from config, as sbatch directives and as submitit
parameters. Pure functions: the sbatch templates and the submitit launcher agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slurmgen.config import ClusterConf, SlurmJobConf
from slurmgen.errors import ConfigError

COMPONENTS = ("registry", "llm", "peer", "toolpool")
AUTO = "auto"  # cpus_per_task / mem sized from the partition's nodes (launchers/fit.py)


def job_conf(cluster: ClusterConf, component: str) -> SlurmJobConf:
    """The component's job config with partition / account / qos defaulted from the cluster."""
    if component not in COMPONENTS:
        raise ConfigError(f"no SLURM job config for component {component!r}; known: {', '.join(COMPONENTS)}")
    job: SlurmJobConf = getattr(cluster, component)
    shared = {k: getattr(job, k) or getattr(cluster, k) for k in ("partition", "account", "qos")}
    return dataclasses.replace(job, **shared)


def job_name(cluster: ClusterConf, component: str) -> str:
    return f"{cluster.job_prefix}-{component}"


def sized_conf(cluster: ClusterConf, component: str) -> SlurmJobConf:
    """``job_conf`` whose sizes are numbers: an ``auto`` must have been resolved (fit.fit_cluster)."""
    job = job_conf(cluster, component)
    if AUTO in (str(job.cpus_per_task).strip().lower(), job.mem.strip().lower()):
        raise ConfigError(f"cluster.{component}: cpus_per_task / mem = auto is sized from the partition's nodes "
                          "(sinfo) when slurmgen submits; here it needs numbers, e.g. cpus_per_task=4 mem=8G")
    return job


def directives(cluster: ClusterConf, component: str) -> list[str]:
    """Resource directives (what follows ``#SBATCH ``), site defaults left out."""
    job = sized_conf(cluster, component)
    out = [f"--{flag}={value}" for flag, value in
           (("partition", job.partition), ("account", job.account), ("qos", job.qos)) if value]
    out += [f"--time={job.time_min}", f"--cpus-per-task={job.cpus_per_task}"]
    if job.mem:
        out.append(f"--mem={job.mem}")
    if job.gpus_per_node:
        out.append(f"--gpus-per-node={job.gpus_per_node}")
    return out + list(job.extra_directives)


def submitit_params(cluster: ClusterConf, component: str) -> dict[str, Any]:
    """Parameters for ``submitit.SlurmExecutor.update_parameters`` (one component's jobs).

    Extra directives become ``#SBATCH`` lines at the top of ``setup`` (sbatch reads
    directives until the first command), then the component's shell setup lines.
    """
    job = sized_conf(cluster, component)
    params: dict[str, Any] = {
        "job_name": job_name(cluster, component), "time": job.time_min, "cpus_per_task": job.cpus_per_task,
        "signal_delay_s": cluster.signal_delay_s, "stderr_to_stdout": True,
        "setup": [f"#SBATCH {d}" for d in job.extra_directives] + list(job.setup),
    }
    for key in ("partition", "account", "qos", "mem"):
        if getattr(job, key):
            params[key] = getattr(job, key)
    if job.gpus_per_node:
        params["gpus_per_node"] = job.gpus_per_node
    return params
