"""Before issuing tasks: wait until every role has a host, an LLM replica is up, and
(when the run starts tool pools) every tool-pool member is registered; then refuse to
issue any when a max_tokens is one no replica's max_model_len allows."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Iterable

from slurmgen.config import pools
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import StartupError
from slurmgen.llm import limits
from slurmgen.llm.poolset import PoolClients
from slurmgen.registry.membership import RegistryClient
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.toolpool.session import pool_size
from slurmgen.workflow import Workflow

log = logging.getLogger("slurmgen.peer")


def missing(registry: RegistryClient, workflow: Workflow, expected_peers: int, llm_pools: Iterable[str],
            expected_pools: int = 0) -> list[str]:
    """What is not up yet; ``llm_pools`` = the LLM pools slurmgen starts (each needs a replica)."""
    view = registry.view
    peers = view.of_kind("peer")
    hosted = {role for m in peers for role in m.roles}
    gaps = [f"role {r!r} has no peer" for r in workflow.roles if r not in hosted]
    serving = {m.pool or pools.DEFAULT for m in view.of_kind("llm")}
    gaps += [f"no replica of LLM pool {p!r} is registered" for p in llm_pools if p not in serving]
    members = len(view.of_kind("toolpool"))
    if members < expected_pools:
        gaps.append(f"{members} of {expected_pools} tool-pool members registered")
    if len(peers) < expected_peers:
        gaps.append(f"{len(peers)} of {expected_peers} agent peers registered")
    return gaps


async def wait_ready(registry: RegistryClient, workflow: Workflow, conf: SlurmgenConf,
                     stop: asyncio.Event) -> None:
    deadline = time.monotonic() + conf.run.startup_timeout_s
    while not stop.is_set():
        gaps = missing(registry, workflow, conf.run.peers, llm_pools=pools.started(conf),
                       expected_pools=pool_size(conf))
        if not gaps:
            return
        if time.monotonic() > deadline:
            raise StartupError(
                f"not ready after {conf.run.startup_timeout_s:.0f} s: {'; '.join(gaps)}. "
                "Check logs/ for the missing processes, or raise run.startup_timeout_s / llm.ready_timeout_s."
            )
        await asyncio.sleep(0.1)


async def refused(llm: PoolClients, conf: SlurmgenConf, run: RunDir) -> bool:
    """A max_tokens that no replica's max_model_len allows: say so in RUN/state/refused."""
    endpoints = [ep for client in llm.clients.values() for ep in client.endpoints()]
    bad = limits.problems(limits.max_tokens_fields(conf.workflow), await limits.lengths(endpoints))
    if bad:
        log.error("refusing to issue tasks: %s", "; ".join(bad))
        write_atomic(run.refused, "\n".join(bad).encode())
    return bool(bad)
