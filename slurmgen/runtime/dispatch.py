"""Where a task goes next, and getting it there.

A task with a next role waits in that role's queue until the credit router picks a
peer hosting it with a free credit (this peer too: then the hop starts here); a
finished task goes home to its origin. While a task is queued or being worked on
here it is *held*: this peer renews its lease at its origin (``hold``).
"""

from __future__ import annotations

import collections
import logging
from collections import deque
from collections.abc import Callable, Iterable

from slurmgen.protocol import Credit, Hold, Member, Orchestrator
from slurmgen.runtime.blobs import SpillLayer
from slurmgen.runtime.outbox import Outbox, Outboxes
from slurmgen.runtime.router import CreditRouter
from slurmgen.transport import codec

log = logging.getLogger("slurmgen.peer")

Arrive = Callable[[Orchestrator], None]


class Dispatcher:
    def __init__(self, peer_id: str, node: str, outboxes: Outboxes, spill: SpillLayer,
                 received: collections.Counter[str], *, hop_here: Callable[[Orchestrator, str], None],
                 home_here: Arrive) -> None:
        """``hop_here(orch, sender)`` starts a hop on this peer, ``home_here(orch)`` a task's
        homecoming when this peer is its origin."""
        self.peer_id, self.node, self.outboxes, self.spill, self.received = peer_id, node, outboxes, spill, received
        self.hop_here, self.home_here = hop_here, home_here
        self.router = CreditRouter()
        self.pending: dict[str, deque[Orchestrator]] = collections.defaultdict(deque)
        self.held: dict[str, Orchestrator] = {}  # tasks this peer is responsible for right now

    # -- membership -------------------------------------------------------------------
    def update(self, peers: list[Member]) -> None:
        """The registry's peers changed: route among the live ones, close the others' outboxes."""
        self.router.update(peers)
        for pid in self.outboxes.prune({m.peer_id for m in peers}):
            self.router.forget(pid)

    def reset(self) -> None:
        """The registry did not know this peer: it was cut off long enough to be expired (or the
        registry restarted). The others forgot it, with the credits they owed it: start over."""
        log.warning("the registry did not know %s (cut off, or the registry restarted): its credits with "
                    "every peer start over", self.peer_id)
        self.router.reset()
        self.pump_all()

    # -- sending ----------------------------------------------------------------------
    def send(self, orch: Orchestrator) -> None:
        """Route a task: home if done, else to a peer hosting its next role."""
        if not orch.next_role:
            self._send_home(orch)
            return
        self.held[orch.task_id] = orch
        self.pending[orch.next_role].append(orch)
        self._pump(orch.next_role)

    def pump_all(self) -> None:
        for role in list(self.pending):
            self._pump(role)

    def _pump(self, role: str) -> None:
        queue = self.pending[role]
        while queue:
            dest = self.router.pick(role, self.node)
            if dest is None:
                return
            self._deliver(dest, queue.popleft())

    def _deliver(self, dest: str, orch: Orchestrator) -> None:
        if dest == self.peer_id:
            self.received["orch_local"] += 1
            self.hop_here(orch, self.peer_id)
            return
        box = self.outboxes.get(dest)
        if box is None:  # gone since picked: try again elsewhere
            self.router.forget(dest)
            self.send(orch)
            return
        self.held.pop(orch.task_id, None)
        self._send_orch(box, orch)

    def _send_orch(self, box: Outbox, orch: Orchestrator) -> None:
        self.spill.strip(orch)
        frame = codec.encode(orch)
        self.received["bytes_orch_sent"] += len(frame)
        box.send(frame)

    def _send_home(self, orch: Orchestrator) -> None:
        self.held.pop(orch.task_id, None)
        if orch.origin == self.peer_id:
            self.home_here(orch)
            return
        box = self.outboxes.get(orch.origin)
        if box is None:
            log.warning("task=%s origin %s is gone; dropping (its lease re-issues it)", orch.task_id, orch.origin)
            return
        self._send_orch(box, orch)

    # -- credits and leases -----------------------------------------------------------
    def give_credit(self, sender: str) -> None:
        """A hop sent by ``sender`` ended here: it may send one more."""
        if sender == self.peer_id:
            self.credited(sender)
            return
        box = self.outboxes.get(sender)
        if box is not None:
            box.send(codec.encode(Credit(n=1)))

    def credited(self, peer_id: str, n: int = 1) -> None:
        self.router.credit(peer_id, n)
        self.pump_all()

    def hold(self, renew_own: Callable[[Iterable[str]], None]) -> None:
        """Renew the leases of the tasks held here: each origin is told (this peer's own directly)."""
        by_origin: dict[str, list[str]] = collections.defaultdict(list)
        for orch in self.held.values():
            by_origin[orch.origin].append(orch.task_id)
        for origin, ids in by_origin.items():
            if origin == self.peer_id:
                renew_own(ids)
            elif (box := self.outboxes.get(origin)) is not None:
                box.send(codec.encode(Hold(task_ids=ids)))

    def passed_on(self, orch: Orchestrator) -> bool:
        """The task left this peer's hands (sent on, or queued for its next role)."""
        return self.held.get(orch.task_id) is not orch or orch in self.pending.get(orch.next_role, ())
