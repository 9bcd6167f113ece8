"""Resources that fit the cluster, checked before the first sbatch.

Every job's request — a job name, where its resources are configured, and the resources
(``SlurmJobConf``: partition, cpus_per_task, mem, gpus_per_node, time_min) — is checked
against the nodes of its partition, read once with ``sinfo``. A request no node can
satisfy is refused with the job, the key, the value asked and the largest node, instead
of sbatch's "Requested node configuration is not available" (or a job pending forever
past the partition's time limit). ``auto`` sizes are resolved from the same nodes:

* ``cpus_per_task: auto`` — every CPU of the smallest node that can take the job;
* ``mem: auto`` — the job's share of a node's memory: the node's memory times the larger
  of the job's share of the node's CPUs and of its GPUs, on the node where that is least
  (so the job fits on every node that can take it, and jobs sharing a node by CPUs share
  its memory the same way).

``fit`` is a pure function over parsed sinfo rows (``parse_sinfo``); ``read_nodes`` is the
one call of sinfo. Only these typed fields are read: ``extra_directives`` (``--mem-per-cpu``,
``--constraint``, …) are the user's own business.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from slurmgen.config.types import SlurmgenConf, SlurmJobConf
from slurmgen.errors import ConfigError, SlurmgenError
from slurmgen.launchers import slurmcmd
from slurmgen.launchers.resources import AUTO, job_conf, job_name, where, with_job

SINFO_FORMAT = "%N|%P|%c|%m|%G|%l"  # node, partition (* = default), CPUs, memory MB, GRES, time limit
SINFO_ARGV = ["sinfo", "-h", "-N", "-o", SINFO_FORMAT]
_MEM = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)B?$", re.IGNORECASE)
_MB_PER = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


class DoesNotFit(ConfigError):
    """A job asks for more than any node of its partition has; nothing was submitted."""


@dataclass(frozen=True)
class Node:
    """One node of one partition, as sinfo shows it."""

    name: str
    partition: str
    cpus: int
    mem_mb: int
    gpus: int
    time_limit_min: int | None  # the partition's limit; None = none
    default: bool = False  # the partition is the cluster's default


@dataclass(frozen=True)
class Ask:
    """One job's (or job array's) request."""

    job: str  # the job name squeue shows, e.g. slurmgen-llm
    where: str  # where its resources are configured, e.g. llm.slurm
    res: SlurmJobConf
    # resource field -> the config key that sets it, when named otherwise (mem -> mem_gb)
    keys: Mapping[str, str] = field(default_factory=dict)
    # resource field -> the value as the user wrote it, when it was converted
    shown: Mapping[str, str] = field(default_factory=dict)

    def said(self, name: str) -> str:
        """``key=value`` as the user wrote it, e.g. ``llm.slurm.mem=16G``."""
        value = self.shown.get(name, str(getattr(self.res, name)))
        return f"{self.where}.{self.keys.get(name, name)}={value}"


# -- sinfo ---------------------------------------------------------------------------------
def read_nodes() -> list[Node]:
    """Every node of every partition (one sinfo call)."""
    return parse_sinfo(slurmcmd.call(SINFO_ARGV))


def parse_sinfo(text: str) -> list[Node]:
    """Rows of ``sinfo -h -N -o '%N|%P|%c|%m|%G|%l'``."""
    return [_node(line) for line in text.splitlines() if line.strip()]


def _node(line: str) -> Node:
    try:
        name, part, cpus, mem, gres, limit = (f.strip() for f in line.split("|"))
        return Node(name, part.rstrip("*"), int(cpus.rstrip("+")), int(mem.rstrip("+")), gres_gpus(gres),
                    time_limit(limit), default=part.endswith("*"))
    except ValueError as exc:
        raise SlurmgenError(f"cannot read sinfo's line {line!r} (format {SINFO_FORMAT}): {exc}") from exc


def gres_gpus(gres: str) -> int:
    """GPUs in a GRES string: ``gpu:4``, ``gpu:a100:2(S:0-1),shard:8`` -> 4, 2; ``(null)`` -> 0."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        parts = item.strip().split(":")
        if parts[0] == "gpu":
            total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def time_limit(text: str) -> int | None:
    """sinfo's time limit in minutes: ``infinite`` -> None, ``1-00:00:00`` -> 1440, ``30:00`` -> 30."""
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    hours, minutes, seconds = [0, 0, 0, *parts][-3:] if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + hours * 60 + minutes + (seconds > 0)


# -- what a job asks -----------------------------------------------------------------------
def mem_mb(text: str) -> int:
    """sbatch --mem text -> MB (no suffix = MB, as sbatch reads it); ValueError when not a size."""
    match = _MEM.match(text.strip())
    if not match:
        raise ValueError(text)
    return math.ceil(float(match.group(1)) * _MB_PER[match.group(2).upper()])


def _cpus(ask: Ask) -> int | None:
    """CPUs asked; None = auto."""
    text = str(ask.res.cpus_per_task).strip().lower()
    if text == AUTO:
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise DoesNotFit(f"the {ask.job} jobs ask {ask.said('cpus_per_task')}: not a CPU count; write a number >= 1 or auto")


def _mem(ask: Ask) -> int | None:
    """MB asked; 0 = the partition's default, None = auto."""
    text = ask.res.mem.strip()
    if text.lower() == AUTO:
        return None
    try:
        return mem_mb(text) if text else 0
    except ValueError:
        raise DoesNotFit(f"the {ask.job} jobs ask {ask.said('mem')}: not a size; write it as sbatch --mem reads it "
                         "(16G, 8000M, 8000 = MB) or auto") from None


# -- the check -----------------------------------------------------------------------------
def fit(asks: Sequence[Ask], nodes: Sequence[Node]) -> list[SlurmJobConf]:
    """Each ask's resources with its auto sizes resolved, in order; raise DoesNotFit naming
    every job no node can take (nothing should be submitted then)."""
    out, problems = [], []
    for ask in asks:
        try:
            out.append(fit_one(ask, nodes))
        except DoesNotFit as exc:
            problems.append(str(exc))
    if problems:
        raise DoesNotFit("resources the cluster cannot give; nothing was submitted:\n  " + "\n  ".join(problems))
    return out


def fit_one(ask: Ask, nodes: Sequence[Node]) -> SlurmJobConf:
    cpus, mem = _cpus(ask), _mem(ask)
    part, pool = _partition(ask, nodes)
    _check_each(ask, part, pool, cpus, mem)
    fits = [n for n in pool if _holds(n, ask.res, cpus, mem)]
    if not fits:
        shapes = sorted({f"{n.cpus} CPUs / {n.mem_mb} MB / {n.gpus} GPUs" for n in pool})
        raise DoesNotFit(f"the {ask.job} jobs ask {_all_said(ask)} but no node of partition {part} has all of "
                         f"it at once (its nodes: {'; '.join(shapes)}); lower one or pick another partition")
    cpus = cpus if cpus is not None else min(n.cpus for n in fits)
    resolved = dataclasses.replace(ask.res, cpus_per_task=cpus)
    if mem is None:
        resolved.mem = f"{min(_share_mb(n, cpus, ask.res.gpus_per_node) for n in fits)}M"
    return resolved


def _partition(ask: Ask, nodes: Sequence[Node]) -> tuple[str, list[Node]]:
    """The partition name(s) the job goes to and their nodes ("a,b" = either)."""
    known = sorted({n.partition for n in nodes})
    if ask.res.partition:
        names = [p.strip() for p in ask.res.partition.split(",") if p.strip()]
        missing = [p for p in names if p not in known]
        if missing:
            raise DoesNotFit(f"the {ask.job} jobs ask {ask.said('partition')} but the cluster has no partition "
                             f"{', '.join(missing)}; partitions: {', '.join(known) or '(none)'}")
    else:
        names = sorted({n.partition for n in nodes if n.default})
        if not names:
            raise DoesNotFit(f"the {ask.job} jobs give no partition and the cluster has no default one; set "
                             f"{ask.where}.{ask.keys.get('partition', 'partition')} (partitions: {', '.join(known)})")
    return ",".join(names), [n for n in nodes if n.partition in names]


def _check_each(ask: Ask, part: str, pool: list[Node], cpus: int | None, mem: int | None) -> None:
    """One line per key that no node of the partition can satisfy even alone."""
    largest = f"the largest node of partition {part} has"
    problems = []
    if cpus is not None and cpus > max(n.cpus for n in pool):
        problems.append(f"{ask.said('cpus_per_task')} but {largest} {max(n.cpus for n in pool)} CPUs")
    if mem and mem > max(n.mem_mb for n in pool):
        problems.append(f"{ask.said('mem')} but {largest} {max(n.mem_mb for n in pool)} MB")
    gpus = max(n.gpus for n in pool)
    if ask.res.gpus_per_node > gpus:
        have = f"{largest} {gpus} GPUs" if gpus else f"no node of partition {part} has a GPU (no gpu GRES)"
        problems.append(f"{ask.said('gpus_per_node')} but {have}")
    longest = _longest(pool)
    if longest is not None and ask.res.time_min > longest:
        problems.append(f"{ask.said('time_min')} (minutes) but partition {part} allows at most {longest} minutes")
    if problems:
        raise DoesNotFit("\n  ".join(f"the {ask.job} jobs ask {p}; lower it or pick another partition"
                                     for p in problems))


def _longest(pool: list[Node]) -> int | None:
    """The longest time limit among the nodes' partitions, in minutes; None = no limit."""
    limits = [n.time_limit_min for n in pool]
    return max(limit for limit in limits if limit is not None) if None not in limits else None


def _holds(node: Node, res: SlurmJobConf, cpus: int | None, mem: int | None) -> bool:
    return (node.gpus >= res.gpus_per_node and (cpus is None or node.cpus >= cpus)
            and (not mem or node.mem_mb >= mem) and (node.time_limit_min is None or node.time_limit_min >= res.time_min))


def _share_mb(node: Node, cpus: int, gpus: int) -> int:
    """The job's share of the node's memory (auto): by CPUs, or by GPUs if that is larger."""
    share = cpus / node.cpus
    if gpus and node.gpus:
        share = max(share, gpus / node.gpus)
    return max(1, math.floor(node.mem_mb * min(share, 1.0)))


def _all_said(ask: Ask) -> str:
    names = ["cpus_per_task", "mem"] + (["gpus_per_node"] if ask.res.gpus_per_node else [])
    return ", ".join(ask.said(n) for n in names)


# -- slurmgen's components -----------------------------------------------------------------
def component_asks(conf: SlurmgenConf, components: Iterable[str]) -> list[Ask]:
    """(job name, resources) of slurmgen's own job arrays, partition defaulted from the cluster."""
    return [Ask(job_name(conf, c), where(conf, c), job_conf(conf, c)) for c in components]


def fit_conf(conf: SlurmgenConf, components: Iterable[str], nodes: Sequence[Node]) -> SlurmgenConf:
    """A copy of ``conf`` whose components' resources are checked and their auto sizes resolved."""
    names = list(components)
    for name, job in zip(names, fit(component_asks(conf, names), nodes)):
        conf = with_job(conf, name, job)
    return conf
