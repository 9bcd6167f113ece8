"""The origin side of a peer: issue tasks from its shard, hold a lease on each, write
each finished one exactly once.

A task's holders renew its lease (``Hold``); a task whose lease runs out — its holder
died, its message was lost — is issued again from its row with ``attempt + 1``. The
first result to come home is written; any later one (a slow "dead" holder, a
duplicate delivery) is dropped. A failure of a retryable class is issued again until
``max_attempts``.

Homecoming: a finished task comes back to its origin (``come_home``), which brings its
spilled parts back for the record, writes it, then frees them.

A poison request: a task whose LLM request was dropped by its dying server
(``server_died``) ``max_engine_deaths`` times — the same request killing a fresh server
again — is written failed as ``engine_died`` instead of being issued again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import msgspec

from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import DiskFull
from slurmgen.input.dataset import BadRow, GoodRow
from slurmgen.proc.faults import fault
from slurmgen.protocol import Failure, Orchestrator, Status
from slurmgen.records import Record, input_of
from slurmgen.runtime.blobs import NoSpill, SpillLayer
from slurmgen.runtime.ledger import Ledger
from slurmgen.workflow import Workflow, fail, first_role

log = logging.getLogger("slurmgen.origin")


def task_seed(run_seed: int, task_id: str) -> int:
    digest = hashlib.blake2b(f"{run_seed}:{task_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def to_record(orch: Orchestrator, row: GoodRow | None = None) -> Record:
    return Record(
        task_id=orch.task_id, row_id=orch.row_id, trial=orch.trial, status=orch.status,
        reason=orch.reason, usage=orch.usage, metrics=orch.metrics, output=orch.state,
        history=orch.history, input=input_of(row.raw if row else bytes(orch.row)),
        line=row.lineno if row else 0, seed=orch.seed, attempt=orch.attempt,
        created_at=orch.created_at, finished_at=time.time(), peer=orch.origin, log=orch.log,
    )


@dataclass
class Lease:
    row: GoodRow
    trial: int
    attempt: int
    deadline: float
    deaths: int = 0  # attempts whose LLM server died under them (server_died)


ISSUE_BATCH = 256  # tasks issued between two yields to the event loop (tens of thousands of free slots at start)


@dataclass
class OriginPolicy:
    trials: int
    max_in_flight: int
    run_seed: int
    lease_s: float
    max_attempts: int
    retry_on: tuple[Failure, ...]
    max_engine_deaths: int = 2

    @classmethod
    def of(cls, conf: SlurmgenConf, shards: int) -> OriginPolicy:
        """One origin's share of the run's knobs (``max_in_flight`` is per run)."""
        return cls(trials=conf.run.trials, max_in_flight=max(1, -(-conf.run.max_in_flight // shards)),
                   run_seed=conf.run.seed, lease_s=conf.run.lease_s, max_attempts=conf.run.max_attempts,
                   retry_on=tuple(map(Failure, conf.run.retry_on)), max_engine_deaths=conf.run.max_engine_deaths)


def _nothing(*_: object) -> None:
    pass


class Origin:
    """Owns one input shard: issues up to ``max_in_flight`` tasks, writes their records.

    ``spill`` is the peer's spill layer (homecoming fills and frees through it), ``release``
    ends a task's tool sessions, ``settled`` is told after each homecoming (the shard may be done),
    ``admit(tasks in flight)`` is awaited before each task is issued (the LLM pools' KV pressure,
    slurmgen.llm.pressure).
    """

    def __init__(self, peer_id: str, ledger: Ledger, workflow: Workflow, policy: OriginPolicy,
                 send: Callable[[Orchestrator], None], clock: Callable[[], float] = time.monotonic, *,
                 spill: SpillLayer | None = None, release: Callable[[Orchestrator], None] = _nothing,
                 settled: Callable[[], None] = _nothing,
                 admit: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.peer_id = peer_id
        self.ledger = ledger
        self.workflow = workflow
        self.policy = policy
        self.send = send
        self.clock = clock
        self.spill: SpillLayer = spill if spill is not None else NoSpill()
        self.release, self.settled = release, settled
        self.admit = admit  # awaited with the tasks in flight before each task is issued (KV pressure)
        self.leases: dict[str, Lease] = {}
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self.exhausted = False
        self.stopped = False
        self.issued = self.reissued = self.retried = self.duplicates = self.written = self.left = 0

    async def issue_all(self, rows: Iterable[GoodRow | BadRow]) -> None:
        fault("source")
        for row in rows:
            for trial in range(self.policy.trials):
                task_id = f"{row.row_id}:{trial}"
                if task_id in self.ledger.done or task_id in self.leases:
                    continue
                if isinstance(row, BadRow):
                    self._write_bad(row, trial)
                    continue
                await self._slots.acquire()
                if self.admit is not None:
                    await self.admit(len(self.leases))
                if self.stopped:
                    return
                self.leases[task_id] = Lease(row, trial, 0, self.clock() + self.policy.lease_s)
                self.issued += 1
                self._start(task_id)
                if self.issued % ISSUE_BATCH == 0:  # a free slot does not yield: let heartbeats and replies run
                    await asyncio.sleep(0)
        self.exhausted = True

    def _start(self, task_id: str) -> None:
        lease = self.leases[task_id]
        orch = Orchestrator(
            task_id=task_id, row_id=lease.row.row_id, trial=lease.trial,
            seed=task_seed(self.policy.run_seed, task_id), origin=self.peer_id, attempt=lease.attempt,
            row=msgspec.Raw(lease.row.raw), created_at=time.time(),
        )
        first = self._first_role(orch)
        if first is None:
            orch.status = orch.status if orch.status is not Status.RUNNING else Status.OK
            self.complete(orch)
            return
        orch.next_role = first
        self.send(orch)

    def _first_role(self, orch: Orchestrator) -> str | None:
        """The transition before any role (a fresh state); a bug in it fails its task only."""
        try:
            return first_role(self.workflow, orch)
        except Exception as exc:  # a transition bug fails its task only
            log.exception("task=%s the first transition failed", orch.task_id)
            fail(orch, Failure.INTERNAL, f"{type(exc).__name__}: {exc}")
            return None

    def _write_bad(self, row: BadRow, trial: int) -> None:
        now = time.time()
        task_id = f"{row.row_id}:{trial}"
        record = Record(task_id=task_id, row_id=row.row_id, trial=trial, status=Status.FAILED, reason=row.reason,
                        input=input_of(row.raw), line=row.lineno, seed=task_seed(self.policy.run_seed, task_id),
                        peer=self.peer_id, created_at=now, finished_at=now)
        if self.ledger.write(record):
            self.written += 1

    def renew(self, task_ids: Iterable[str]) -> None:
        deadline = self.clock() + self.policy.lease_s
        for task_id in task_ids:
            lease = self.leases.get(task_id)
            if lease is not None:
                lease.deadline = deadline

    def expire(self) -> list[str]:
        """Issue again every task whose lease ran out; return their ids."""
        now = self.clock()
        expired = [tid for tid, lease in self.leases.items() if lease.deadline < now]
        for task_id in expired:
            self._again(task_id, "lost")
            self.reissued += 1
        return expired

    def _again(self, task_id: str, why: str) -> None:
        lease = self.leases[task_id]
        lease.attempt += 1
        lease.deadline = self.clock() + self.policy.lease_s
        log.warning("task=%s issued again (attempt %d): %s", task_id, lease.attempt, why)
        self._start(task_id)

    def complete(self, orch: Orchestrator) -> None:
        """A finished task came home: write it once, free its slot."""
        lease = self.leases.get(orch.task_id)
        if lease is None:
            self.duplicates += 1
            log.info("task=%s dropped a late duplicate (attempt %d)", orch.task_id, orch.attempt)
            return
        if orch.status == Status.FAILED and orch.attempt < lease.attempt:  # a newer attempt is under way
            self.duplicates += 1
            log.info("task=%s dropped attempt %d's failure: attempt %d is under way (%s)", orch.task_id,
                     orch.attempt, lease.attempt, orch.reason)
            return
        if self._retryable(orch) and self.stopped:  # likely the stop's own doing (servers going away)
            del self.leases[orch.task_id]
            self.left += 1
            log.info("task=%s failed while stopping (%s): left for the resume", orch.task_id, orch.reason)
            return
        if self._poisonous(orch, lease):
            orch.reason = Failure.ENGINE_DIED.reason(
                f"the LLM server died under this task's request {lease.deaths} times "
                f"(run.max_engine_deaths={self.policy.max_engine_deaths}); see the LLM server logs; last: "
                + orch.reason.partition(":")[2].strip())
        elif self._retryable(orch) and lease.attempt + 1 < self.policy.max_attempts:
            self.retried += 1
            self._again(orch.task_id, orch.reason)
            return
        written = self.ledger.write(to_record(orch, lease.row))  # DiskFull raises here: the task stays leased
        del self.leases[orch.task_id]
        if written:
            self.written += 1
        self._slots.release()

    # -- homecoming -------------------------------------------------------------------
    async def come_home(self, orch: Orchestrator) -> None:
        """A finished task is back: bring its spilled parts back for the record, write it, then free them."""
        await self.spill.fill(orch)  # a payload gone fails the task as lost: written (or retried) all the same
        refs = self.spill.take_refs(orch)
        fault("home")
        self.release(orch)  # written, issued again or a late duplicate: its sessions are done
        self.complete(orch)
        self.spill.free(refs)  # after the write: a failed free can leak payloads, never a task
        self.settled()

    def home_failed(self, orch: Orchestrator, exc: BaseException) -> None:
        """``come_home`` raised: a task not written yet is written (or re-issued) all the same."""
        if isinstance(exc, DiskFull):
            raise exc  # the process stops; the resume writes it
        if orch.task_id in self.leases:
            self.spill.take_refs(orch)
            fail(orch, Failure.LOST, f"coming home on {self.peer_id} failed: {type(exc).__name__}: {exc}")
            self.complete(orch)  # "lost" is retried from its row while run.max_attempts allow
        self.settled()

    def _poisonous(self, orch: Orchestrator, lease: Lease) -> bool:
        if orch.status is not Status.FAILED or Failure.of(orch.reason) is not Failure.SERVER_DIED:
            return False
        lease.deaths += 1
        return lease.deaths >= self.policy.max_engine_deaths

    def _retryable(self, orch: Orchestrator) -> bool:
        return orch.status is Status.FAILED and Failure.of(orch.reason) in self.policy.retry_on

    def stop_issuing(self) -> None:
        self.stopped = True
        self._slots.release()  # wake issue_all if it waits for a slot

    @property
    def finished(self) -> bool:
        return self.exhausted and not self.leases and not self.left
