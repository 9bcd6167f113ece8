"""What a run starts, with which command: a pure function of the config.

Both launchers (local subprocesses, SLURM job arrays) start exactly this plan.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from slurmgen.config import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.launchers import commands


@dataclass(frozen=True)
class ProcessSpec:
    name: str  # unique in the run: registry, llm-0, peer-3
    component: str  # registry | llm | peer
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    registry: ProcessSpec
    services: list[ProcessSpec]
    peers: list[ProcessSpec]

    def all(self) -> list[ProcessSpec]:
        return [self.registry, *self.services, *self.peers]


def sim_script(conf: SlurmgenConf) -> str:
    return conf.workflow.sim_script if conf.llm.script == "auto" else conf.llm.script


def make_plan(conf: SlurmgenConf, run_dir: Path, python: str = sys.executable) -> Plan:
    if conf.run.peers < 1:
        raise ConfigError(f"run.peers={conf.run.peers}: need at least 1 agent peer")
    if conf.llm.backend not in commands.BACKENDS:
        raise ConfigError(f"llm.backend={conf.llm.backend!r} is unknown; valid: {', '.join(commands.BACKENDS)}")
    host = "127.0.0.1" if conf.cluster.kind == "local" else conf.cluster.host
    registry = ProcessSpec("registry", "registry", [
        python, "-m", "slurmgen.registry", "--run-dir", str(run_dir), "--host", host or "auto",
        "--heartbeat-s", str(conf.run.heartbeat_s), "--liveness", str(conf.run.heartbeat_liveness)])
    services = []
    if conf.llm.backend != "openai":
        for i in range(conf.llm.replicas):
            name = f"llm-{i}"
            inner = commands.server_command(conf.llm, run_dir, name, sim_script(conf), python)
            services.append(ProcessSpec(name, "llm", commands.supervised(run_dir, name, conf.llm, inner, python)))
    peers = [ProcessSpec(f"peer-{i}", "peer", [
        python, "-m", "slurmgen.runtime.peer", "--run-dir", str(run_dir), "--shard", str(i),
        "--shards", str(conf.run.peers)]) for i in range(conf.run.peers)]
    return Plan(registry, services, peers)
