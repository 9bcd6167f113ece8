"""LLM pools: which model each role talks to.

A run has one pool named ``default`` (``llm``) and any number more (``llms.<name>``), each
a model with its own backend, replicas, server arguments and SLURM resources. A workflow
maps roles to pools with ``workflow.role_llm``; a role not mapped uses ``default``. The
default pool is started only when some role uses it; a named pool no role uses is refused
(it is a typo, or a model that would sit idle).
"""

from __future__ import annotations

import re

from slurmgen.config.types import LLMConf, SlurmgenConf
from slurmgen.config.workflows import get_workflow
from slurmgen.errors import ConfigError

DEFAULT = "default"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
STARTED_BACKENDS = ("sim", "vllm", "sglang")  # backends whose servers slurmgen starts itself


def declared(conf: SlurmgenConf) -> dict[str, LLMConf]:
    """Every pool of the config, ``default`` first."""
    return {DEFAULT: conf.llm, **conf.llms}


def role_pool(conf: SlurmgenConf, role: str) -> str:
    return conf.workflow.role_llm.get(role, DEFAULT)


def used(conf: SlurmgenConf) -> dict[str, LLMConf]:
    """The pools some role of the workflow uses, ``default`` first: the ones the run starts."""
    names = {role_pool(conf, role) for role in get_workflow(conf.workflow.name).roles} or {DEFAULT}
    return {name: pool for name, pool in declared(conf).items() if name in names}


def started(conf: SlurmgenConf) -> dict[str, LLMConf]:
    """Used pools whose servers slurmgen starts (not hosted ``openai`` pools)."""
    return {name: pool for name, pool in used(conf).items() if pool.backend in STARTED_BACKENDS}


def key(pool: str) -> str:
    """The config prefix of a pool, as messages name it: ``llm`` or ``llms.<name>``."""
    return "llm" if pool == DEFAULT else f"llms.{pool}"


def server_name(pool: str, index: int | str) -> str:
    """The process (and registry) name of replica ``index``: llm-0, llm-teacher-0."""
    return f"llm-{index}" if pool == DEFAULT else f"llm-{pool}-{index}"


def component(pool: str) -> str:
    """The SLURM job-name suffix of a pool's servers: llm, llm-teacher."""
    return "llm" if pool == DEFAULT else f"llm-{pool}"


def problems(conf: SlurmgenConf) -> list[str]:
    """What is wrong with the pools and the role mapping (empty = fine)."""
    out = []
    if DEFAULT in conf.llms:
        out.append("llms.default: the default pool is `llm`; set llm.* instead")
    out += [f"llms.{name}: a pool name is lowercase letters, digits and _ (at most 32, a letter first)"
            for name in conf.llms if not _NAME.match(name)]
    roles, pools = list(get_workflow(conf.workflow.name).roles), declared(conf)
    for role, pool in conf.workflow.role_llm.items():
        if role not in roles:
            out.append(f"workflow.role_llm.{role}: workflow {conf.workflow.name!r} has no role {role!r} "
                       f"(its roles: {', '.join(roles)})")
        elif pool not in pools:
            out.append(f"workflow.role_llm.{role}={pool!r}: no such LLM pool (pools: {', '.join(pools)}); "
                       f"declare it as llms.{pool} (e.g. +llms.{pool}.model=NAME)")
    idle = [name for name in conf.llms if name not in used(conf)]
    out += [f"llms.{name} is used by no role: map one to it (workflow.role_llm.ROLE={name}) or remove it"
            for name in idle if _NAME.match(name)]
    for name, pool in used(conf).items():
        if pool.backend == "openai" and not pool.urls:
            out.append(f"{key(name)}.backend=openai needs {key(name)}.urls (the servers' base URLs, "
                       f"e.g. '{key(name)}.urls=[http://host:8000]')")
    return out


def check(conf: SlurmgenConf) -> None:
    bad = problems(conf)
    if bad:
        raise ConfigError("invalid LLM pools; nothing was started:\n  " + "\n  ".join(bad))
