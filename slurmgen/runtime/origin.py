"""The origin side of a peer: issue tasks from its shard, write each finished one once."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Callable, Iterable

import msgspec

from slurmgen.dataset import BadRow, GoodRow
from slurmgen.protocol import Orchestrator
from slurmgen.records import Record
from slurmgen.runtime.ledger import Ledger
from slurmgen.workflow import Workflow

log = logging.getLogger("slurmgen.origin")


def task_seed(run_seed: int, task_id: str) -> int:
    digest = hashlib.blake2b(f"{run_seed}:{task_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def to_record(orch: Orchestrator) -> Record:
    return Record(
        task_id=orch.task_id, row_id=orch.row_id, trial=orch.trial, status=orch.status,
        reason=orch.reason, usage=orch.usage, metrics=orch.metrics, output=orch.state,
        history=orch.history, seed=orch.seed, attempt=orch.attempt,
        created_at=orch.created_at, finished_at=time.time(), peer=orch.origin,
    )


class Origin:
    """Owns one input shard: issues up to ``max_in_flight`` tasks, writes their records."""

    def __init__(self, peer_id: str, ledger: Ledger, workflow: Workflow, *, trials: int,
                 max_in_flight: int, run_seed: int, send: Callable[[Orchestrator], None]) -> None:
        self.peer_id = peer_id
        self.ledger = ledger
        self.workflow = workflow
        self.trials = trials
        self.run_seed = run_seed
        self.send = send
        self.in_flight: dict[str, Orchestrator] = {}
        self._slots = asyncio.Semaphore(max_in_flight)
        self.exhausted = False
        self.issued = 0
        self.duplicates = 0
        self.written = 0

    async def issue_all(self, rows: Iterable[GoodRow | BadRow]) -> None:
        for row in rows:
            for trial in range(self.trials):
                task_id = f"{row.row_id}:{trial}"
                if task_id in self.ledger.done or task_id in self.in_flight:
                    continue
                if isinstance(row, BadRow):
                    self._write_bad(row, trial)
                    continue
                await self._slots.acquire()
                self._issue(row, trial, task_id)
        self.exhausted = True

    def _issue(self, row: GoodRow, trial: int, task_id: str) -> None:
        orch = Orchestrator(
            task_id=task_id, row_id=row.row_id, trial=trial, seed=task_seed(self.run_seed, task_id),
            origin=self.peer_id, row=msgspec.Raw(row.raw), created_at=time.time(),
        )
        self.in_flight[task_id] = orch
        self.issued += 1
        first = self.workflow.transition(orch)
        if first is None:
            orch.status = orch.status if orch.status != "running" else "ok"
            self.complete(orch)
            return
        orch.next_role = first
        self.send(orch)

    def _write_bad(self, row: BadRow, trial: int) -> None:
        record = Record(task_id=f"{row.row_id}:{trial}", row_id=row.row_id, trial=trial,
                        status="failed", reason=row.reason, peer=self.peer_id,
                        created_at=time.time(), finished_at=time.time())
        if self.ledger.write(record):
            self.written += 1

    def complete(self, orch: Orchestrator) -> None:
        """A finished task came home: write it once, free its slot."""
        live = self.in_flight.get(orch.task_id)
        if live is None or live.attempt != orch.attempt:
            self.duplicates += 1
            log.info("task=%s dropped a late duplicate (attempt %d)", orch.task_id, orch.attempt)
            return
        del self.in_flight[orch.task_id]
        if self.ledger.write(to_record(orch)):
            self.written += 1
        self._slots.release()

    @property
    def finished(self) -> bool:
        return self.exhausted and not self.in_flight
