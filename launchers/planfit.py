"""A plan checked against the cluster's nodes (``sinfo``), as the SLURM launcher checks a run
(found by ``slurmgen plan`` under the entry-point group ``slurmgen.plan_fit``).

First each job array's shape, with the launcher's own check (``launchers/fit.py``: a node
of the partition must hold one job's CPUs, memory, GPUs and time); then the whole plan at
once: every job placed on the partition's nodes, largest first (GPUs, then CPUs, then
memory). The jobs of one run must all run together (the peers wait for the servers), so a
job left over means the run would wait in the queue; the finding names the resource that
is short (asked in all vs what the partition has) and the nodes used.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from pathlib import Path

from slurmgen.capacity.fit import Fit
from slurmgen.config.types import SlurmgenConf, SlurmJobConf
from slurmgen.errors import SlurmgenError
from slurmgen.launchers import fit
from slurmgen.run.plan import make_plan


def jobs(conf: SlurmgenConf, nodes: Sequence[fit.Node]) -> list[tuple[str, SlurmJobConf]]:
    """(job name, resources with auto sizes resolved) of every job the run would submit;
    raises fit.DoesNotFit when one job alone fits no node."""
    planned = make_plan(conf, Path(conf.run.dir))
    counts = collections.Counter(s.job_component for s in [*planned.services, *planned.peers])
    names = sorted(counts)
    sized = fit.fit(fit.component_asks(conf, names), nodes)
    return [(f"{conf.cluster.job_prefix}-{name}", job) for name, job in zip(names, sized) for _ in range(counts[name])]


def fit_plan(conf: SlurmgenConf) -> Fit:
    """The entry point: ``conf`` (the planned run's config) against the nodes sinfo lists."""
    return check(conf, fit.read_nodes())


def check(conf: SlurmgenConf, nodes: Sequence[fit.Node]) -> Fit:
    try:
        todo = jobs(conf, nodes)
    except fit.DoesNotFit as exc:
        return Fit(partition=conf.cluster.partition or "(default)", nodes=0, nodes_used=0, asked={}, have={},
                   short=[str(exc)])
    part = _partition(conf, nodes)
    pool = [n for n in nodes if n.partition == part]
    free = {n.name: [n.gpus, n.cpus, n.mem_mb] for n in pool}
    left = [name for name, job in sorted(todo, key=lambda j: _need(j[1]), reverse=True) if not _place(free, _need(job))]
    asked = dict(zip(("gpus", "cpus", "mem_mb"), map(sum, zip(*(_need(job) for _, job in todo)))))
    have = {"gpus": sum(n.gpus for n in pool), "cpus": sum(n.cpus for n in pool), "mem_mb": sum(n.mem_mb for n in pool)}
    used = sum(1 for n in pool if free[n.name] != [n.gpus, n.cpus, n.mem_mb])
    return Fit(partition=part, nodes=len(pool), nodes_used=used, asked=asked, have=have,
               short=_short(left, asked, have, part) if left else [])


def _partition(conf: SlurmgenConf, nodes: Sequence[fit.Node]) -> str:
    named = conf.cluster.partition.split(",")[0].strip()
    if named:
        return named
    default = [n.partition for n in nodes if n.default]
    if not default:
        raise SlurmgenError("the cluster has no default partition and cluster.partition is empty: set it")
    return default[0]


def _need(job: SlurmJobConf) -> tuple[int, int, int]:
    """(GPUs, CPUs, MB) one job holds; memory "" (the partition's default) counts as 0."""
    mem = job.mem.strip()
    return job.gpus_per_node, int(job.cpus_per_task), fit.mem_mb(mem) if mem else 0


def _place(free: dict[str, list[int]], need: tuple[int, int, int]) -> bool:
    for room in free.values():
        if all(have >= want for have, want in zip(room, need)):
            for i, want in enumerate(need):
                room[i] -= want
            return True
    return False


def _short(left: list[str], asked: dict[str, int], have: dict[str, int], part: str) -> list[str]:
    jobs_left = ", ".join(f"{n} x{c}" for n, c in collections.Counter(left).items())
    words = {"gpus": "GPUs", "cpus": "CPUs", "mem_mb": "MB of memory"}
    short = [f"{words[k]}: the plan asks {asked[k]} in all, partition {part} has {have[k]}"
             for k in words if asked[k] > have[k]]
    if not short:
        short = ["no resource is short in total, but the jobs do not pack onto the nodes (each job needs one node)"]
    return [f"these jobs would wait in the queue: {jobs_left}", *short]
