"""What a run starts, with which command: a pure function of the config.

Both launchers (local subprocesses, SLURM job arrays) start exactly this plan.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from slurmgen.config import pools
from slurmgen.config.types import LLMConf, SlurmgenConf
from slurmgen.config.workflows import get_workflow
from slurmgen.errors import ConfigError
from slurmgen.proc.logs import FORMAT_ENV, check_format
from slurmgen.run import commands
from slurmgen.toolpool import sandbox
from slurmgen.toolpool.session import pool_factory, pool_size
from slurmgen.transport import hosts, ports


@dataclass(frozen=True)
class ProcessSpec:
    name: str  # unique in the run: registry, llm-0, llm-teacher-0, peer-3
    component: str  # registry | llm | toolpool | peer
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    index: int = 0  # replica or shard number (-1 in templates, where it is a shell variable)
    pool: str = ""  # llm: the LLM pool it serves (slurmgen.config.pools)

    @property
    def job_component(self) -> str:
        """Whose SLURM resources and job name it takes: its component, or its pool's (llm-<name>)."""
        return pools.component(self.pool or pools.DEFAULT) if self.component == "llm" else self.component
    # where a restart starts it instead, in turn (the registry over cluster.placement.registry)
    moves: tuple[ProcessSpec, ...] = ()

    def moved(self) -> ProcessSpec:
        """What a restart starts: the next placement of a process that moves, else the same."""
        if not self.moves:
            return self
        return dataclasses.replace(self.moves[0], moves=(*self.moves[1:], dataclasses.replace(self, moves=())))


@dataclass(frozen=True)
class Plan:
    registry: ProcessSpec
    services: list[ProcessSpec]
    peers: list[ProcessSpec]

    def all(self) -> list[ProcessSpec]:
        return [self.registry, *self.services, *self.peers]


def sim_script(conf: SlurmgenConf, llm: LLMConf | None = None) -> str:
    """A pool's simulator script: the workflow's default, one it names, or a path."""
    script = (llm or conf.llm).script
    scripts = get_workflow(conf.workflow.name).sim_scripts
    name = "default" if script == "auto" else script
    if name in scripts:
        return f"{conf.workflow.name}/{name}"  # the sim finds it in the workflow registry
    return "generic" if script == "auto" else script


def llm_spec(conf: SlurmgenConf, run_dir: Path, index: int | str, python: str = sys.executable,
             pool: str = pools.DEFAULT) -> ProcessSpec:
    """Replica ``index`` of an LLM pool (an int, or a shell variable such as
    ``${SLURM_ARRAY_TASK_ID}`` in templates)."""
    name, llm = pools.server_name(pool, index), pools.declared(conf)[pool]
    tools = any(pools.role_pool(conf, role) == pool for role in conf.workflow.tool_roles)
    inner = commands.server_command(llm, run_dir, name, sim_script(conf, llm), python, key=pools.key(pool),
                                    local=conf.cluster.kind == "local", tools=tools)
    argv = commands.supervised(run_dir, name, llm, inner, python, host=_host(conf), pool=pool)
    return ProcessSpec(name, "llm", argv, env=dict(llm.server_env), index=index if isinstance(index, int) else -1,
                       pool=pool)


def peer_spec(conf: SlurmgenConf, run_dir: Path, index: int | str, python: str = sys.executable) -> ProcessSpec:
    """Agent peer owning input shard ``index`` (an int, or a shell variable in templates)."""
    return ProcessSpec(f"peer-{index}", "peer", [
        python, "-m", "slurmgen.runtime.peer", "--run-dir", str(run_dir), "--shard", str(index),
        "--shards", str(conf.run.peers)], index=index if isinstance(index, int) else -1)


def pool_spec(conf: SlurmgenConf, run_dir: Path, index: int | str, python: str = sys.executable) -> ProcessSpec:
    """Tool-pool member ``index``: plain, under bubblewrap or in Apptainer (``toolpool.sandbox``)."""
    name = f"pool-{index}"
    return ProcessSpec(name, "toolpool", sandbox.pool_command(conf, run_dir, name, python),
                       index=index if isinstance(index, int) else -1)


def registry_spec(conf: SlurmgenConf, run_dir: Path, python: str = sys.executable) -> ProcessSpec:
    return ProcessSpec("registry", "registry", [
        python, "-m", "slurmgen.registry.server", "--run-dir", str(run_dir), "--host", _host(conf),
        "--heartbeat-s", str(conf.run.heartbeat_s), "--liveness", str(conf.run.heartbeat_liveness)])


def make_plan(conf: SlurmgenConf, run_dir: Path, python: str = sys.executable) -> Plan:
    if conf.run.peers < 1:
        raise ConfigError(f"run.peers={conf.run.peers}: need at least 1 agent peer")
    for name, llm in pools.used(conf).items():
        if llm.backend not in commands.BACKENDS:
            raise ConfigError(f"{pools.key(name)}.backend={llm.backend!r} is unknown; valid: "
                              f"{', '.join(commands.BACKENDS)}")
    services = [llm_spec(conf, run_dir, i, python, pool=name)
                for name, llm in pools.started(conf).items() for i in range(llm.replicas)]
    members = pool_size(conf)
    if members == 0 and get_workflow(conf.workflow.name).toolpool_factory:
        raise ConfigError(f"workflow {conf.workflow.name!r} runs its tools in tool pools; toolpool.size=0 starts "
                          "none: use toolpool.size>=1 (or -1, the workflow's default)")
    if members > 0:
        if not pool_factory(conf):
            raise ConfigError(f"toolpool.size={members} but no session factory: set toolpool.factory "
                              "or use a workflow with a toolpool_factory")
        if conf.toolpool.sandbox == "bwrap" and conf.cluster.kind == "local":
            sandbox.check_bwrap()
        services += [pool_spec(conf, run_dir, i, python) for i in range(members)]
    peers = [peer_spec(conf, run_dir, i, python) for i in range(conf.run.peers)]
    plan = Plan(registry_spec(conf, run_dir, python), services, peers)
    env = process_env(conf)
    plan = Plan(with_env(plan.registry, env), [with_env(s, env) for s in plan.services],
                [with_env(s, env) for s in plan.peers])
    return on_nodes(plan, conf)


def process_env(conf: SlurmgenConf) -> dict[str, str]:
    """What every process of the run gets in its environment (log format, port range)."""
    env = {}
    if check_format(conf.run.log_format) != "text":
        env[FORMAT_ENV] = conf.run.log_format
    if ports.parse(conf.cluster.port_range):
        env[ports.ENV] = conf.cluster.port_range
    return env


def with_env(spec: ProcessSpec, env: dict[str, str]) -> ProcessSpec:
    return dataclasses.replace(spec, env={**spec.env, **env}) if env else spec


def on_nodes(plan: Plan, conf: SlurmgenConf) -> Plan:
    """Local runs over pretend nodes: each service and peer is placed on its node
    (``hosts.pretend_node``: ``index % n`` or ``cluster.placement``; named node-<k>, started under
    ``cluster.node_exec`` when given); the registry stays here unless placed, and moves on restart."""
    if hosts.pretend_node(conf.cluster, "peer", 0) is None:
        return plan

    def place(spec: ProcessSpec, index: int) -> ProcessSpec:
        node = hosts.pretend_node(conf.cluster, spec.component, index)
        if node is None:
            return spec
        prefix = [part.replace("{node}", str(node)) for part in conf.cluster.node_exec]
        return dataclasses.replace(spec, argv=[*prefix, *spec.argv], env={**spec.env, "SLURMGEN_NODE": f"node-{node}"})

    registries = [place(plan.registry, k) for k in range(len(conf.cluster.placement.get("registry", ())) or 1)]
    registry = dataclasses.replace(registries[0], moves=tuple(registries[1:]))
    return Plan(registry, [place(s, s.index) for s in plan.services], [place(s, s.index) for s in plan.peers])


def _host(conf: SlurmgenConf) -> str:
    """Bind address: the interface's (resolved on each process's node), loopback locally; on a
    cluster the node's own address ("auto")."""
    if conf.cluster.interface:
        return hosts.IFACE + conf.cluster.interface
    if conf.cluster.kind == "local":
        return conf.cluster.host or "127.0.0.1"
    return conf.cluster.host or "auto"
