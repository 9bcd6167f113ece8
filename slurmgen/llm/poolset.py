"""One LLM client per pool in a process, and which client each role gets.

Each pool's client sees only its own pool's replicas (registered LLM services carry their
pool's name; hosted pools list their ``urls``), so retries, concurrency caps and sticky
routing stay inside the pool a role was mapped to.
"""

from __future__ import annotations

import os
from typing import Iterable

from slurmgen.config import pools
from slurmgen.config.types import SlurmgenConf
from slurmgen.config.workflows import get_workflow
from slurmgen.llm.client import LLMClient
from slurmgen.llm.ratelimit import LimiterStats
from slurmgen.llm.types import Endpoint, EndpointStats
from slurmgen.protocol import Member


class PoolClients:
    def __init__(self, conf: SlurmgenConf, peers: int = 1) -> None:
        """``peers``: the processes sharing each pool's run-wide rate limits (run.peers)."""
        used = pools.used(conf)
        self.clients = {name: LLMClient.from_conf(llm, api_key=os.environ.get(llm.api_key_env), pool=name,
                                                  peers=peers) for name, llm in used.items()}
        self.hosted = {name: [Endpoint(url=u, model=llm.model) for u in llm.urls] for name, llm in used.items()}
        self.role_pool = {role: pools.role_pool(conf, role) for role in get_workflow(conf.workflow.name).roles}

    def for_role(self, role: str) -> LLMClient:
        return self.clients[self.role_pool[role]]

    def set_members(self, members: Iterable[Member]) -> None:
        """The registry's LLM services, each to its pool's client (with the hosted URLs)."""
        by_pool: dict[str, list[Endpoint]] = {name: list(urls) for name, urls in self.hosted.items()}
        for m in members:
            pool = by_pool.get(m.pool or pools.DEFAULT)
            if pool is not None:
                pool.append(Endpoint(url=m.address, model=m.model, capacity=m.capacity))
        for name, client in self.clients.items():
            client.set_endpoints(by_pool[name])

    def stats(self) -> dict[str, EndpointStats]:
        """Counters per replica URL over every pool (each names its pool and model)."""
        return {url: s for client in self.clients.values() for url, s in client.stats().items()}

    def limiter_stats(self) -> dict[str, LimiterStats]:
        """Each pool's rate limiter: attempts that waited, seconds waited, 429 pauses."""
        return {name: client.limiter_stats() for name, client in self.clients.items()}

    def outstanding(self) -> dict[str, int]:
        return {url: n for client in self.clients.values() for url, n in client.outstanding().items()}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
