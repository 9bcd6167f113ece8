"""What the check of a plan against the cluster found, and the planned run's config.

The check itself knows the cluster (``sinfo``, job sizing): it lives with the SLURM launcher
and is found under the entry-point group ``slurmgen.plan_fit`` (the core imports no launcher).
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

import msgspec

from slurmgen.capacity.sizing import Plan
from slurmgen.config.load import load_run_config
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import SlurmgenError

GROUP = "slurmgen.plan_fit"


class Fit(msgspec.Struct, kw_only=True):
    """What the check found: ``short`` is empty when the plan fits."""

    partition: str
    nodes: int  # nodes of the partition
    nodes_used: int
    asked: dict[str, int]  # cpus, gpus, mem_mb: summed over every job of the plan
    have: dict[str, int]  # the same over the partition's nodes
    short: list[str]


def planned_conf(plan: Plan) -> SlurmgenConf:
    """The calibration's config with the plan's replicas, peers and tool-pool members, on SLURM."""
    conf = load_run_config(Path(plan.calibration.run) / "config.yaml")
    conf = dataclasses.replace(conf, cluster=dataclasses.replace(conf.cluster, kind="slurm"),
                               run=dataclasses.replace(conf.run, peers=plan.peers, max_in_flight=plan.max_in_flight),
                               toolpool=dataclasses.replace(conf.toolpool, size=plan.toolpool_size or conf.toolpool.size))
    for p in plan.pools:
        if p.pool == "default":
            conf = dataclasses.replace(conf, llm=dataclasses.replace(conf.llm, replicas=p.replicas))
        else:
            conf = dataclasses.replace(conf, llms={**conf.llms,
                                                   p.pool: dataclasses.replace(conf.llms[p.pool], replicas=p.replicas)})
    return conf


def check_plan(plan: Plan, kind: str = "slurm") -> Fit:
    """The plan checked by the ``kind`` launcher's check (its entry point in ``slurmgen.plan_fit``)."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if kind not in found:
        raise SlurmgenError(f"no plan check for cluster kind {kind!r} (entry-point group {GROUP}: "
                            f"{', '.join(sorted(found)) or 'empty'}); reinstall slurmgen: pip install -e . --no-deps")
    check: Callable[[SlurmgenConf], Fit] = found[kind].load()
    return check(planned_conf(plan))
