"""Before issuing tasks: wait until every role has a host, an LLM replica is up, and
(when the run starts tool pools) every tool-pool member is registered."""

from __future__ import annotations

import asyncio
import time

from slurmgen.config import SlurmgenConf
from slurmgen.errors import StartupError
from slurmgen.membership import RegistryClient
from slurmgen.toolpool.session import pool_size
from slurmgen.workflow import Workflow


def missing(registry: RegistryClient, workflow: Workflow, expected_peers: int, need_llm: bool,
            expected_pools: int = 0) -> list[str]:
    view = registry.view
    peers = view.of_kind("peer")
    hosted = {role for m in peers for role in m.roles}
    gaps = [f"role {r!r} has no peer" for r in workflow.roles if r not in hosted]
    if need_llm and not view.of_kind("llm"):
        gaps.append("no LLM replica is registered")
    pools = len(view.of_kind("toolpool"))
    if pools < expected_pools:
        gaps.append(f"{pools} of {expected_pools} tool-pool members registered")
    if len(peers) < expected_peers:
        gaps.append(f"{len(peers)} of {expected_peers} agent peers registered")
    return gaps


async def wait_ready(registry: RegistryClient, workflow: Workflow, conf: SlurmgenConf,
                     stop: asyncio.Event) -> None:
    deadline = time.monotonic() + conf.run.startup_timeout_s
    while not stop.is_set():
        gaps = missing(registry, workflow, conf.run.peers, need_llm=conf.llm.backend != "openai",
                       expected_pools=pool_size(conf))
        if not gaps:
            return
        if time.monotonic() > deadline:
            raise StartupError(
                f"not ready after {conf.run.startup_timeout_s:.0f} s: {'; '.join(gaps)}. "
                "Check logs/ for the missing processes, or raise run.startup_timeout_s / llm.ready_timeout_s."
            )
        await asyncio.sleep(0.1)
