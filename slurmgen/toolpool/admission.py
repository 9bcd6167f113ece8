"""Admission of session opens on one pool member (pure logic, no sockets).

Opens start one at a time, in arrival order, and only while the member hosts fewer than
``capacity`` sessions: a member with 500 tasks asking at once opens them at the pace it
can build them, and the calls of its open sessions run in between (they share its one
worker thread). An open that cannot start now waits in the member's queue and is told
so (``SessionReply(kind="queued")``), so that its client waits without a timeout while
the member lives. A client that asks not to wait (``SessionOpen.wait=False``: it would
rather try another member first) is refused (``kind="full"``) when the member has no
room for it, counting the opens queued before it.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any, Literal

Verdict = Literal["start", "queued", "refused"]


class Waiting:
    __slots__ = ("msg", "reply_to", "since")

    def __init__(self, reply_to: Any, msg: Any, since: float) -> None:
        self.reply_to, self.msg, self.since = reply_to, msg, since


class Admission:
    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.clock = clock
        self.queue: collections.deque[Waiting] = collections.deque()
        self.opening = 0  # opens started and not finished (at most one)
        self.started = self.queued = self.refused = 0  # cumulative
        self.waited_s = 0.0  # summed over the opens that waited in the queue

    def offer(self, reply_to: Any, msg: Any, hosted: int, already_open: bool) -> Verdict:
        """What to do with a ``SessionOpen`` now (``hosted``: sessions the member holds)."""
        if already_open or (not self.queue and not self.opening and hosted < self.capacity):
            self.opening += 1
            self.started += 1
            return "start"
        if not msg.wait and hosted + self.opening + len(self.queue) >= self.capacity:
            self.refused += 1
            return "refused"
        self.queue.append(Waiting(reply_to, msg, self.clock()))
        self.queued += 1
        return "queued"

    def finished(self) -> None:
        """An open that was started is done (opened or failed)."""
        self.opening -= 1

    def next(self, hosted: int) -> Waiting | None:
        """The queued open to start now, if any may."""
        if self.opening or not self.queue or hosted >= self.capacity:
            return None
        waiting = self.queue.popleft()
        self.opening += 1
        self.started += 1
        self.waited_s += self.clock() - waiting.since
        return waiting

    def cancel(self, session: str) -> bool:
        """Forget a queued open (its task let go of it); True if one was queued."""
        for waiting in self.queue:
            if waiting.msg.session == session:
                self.queue.remove(waiting)
                return True
        return False

    def stats(self) -> dict[str, Any]:
        return {"queued_now": len(self.queue), "opening": self.opening, "started": self.started,
                "queued": self.queued, "refused": self.refused, "queue_wait_s": round(self.waited_s, 3)}
