"""Every background coroutine of a process has an owner: nothing is fire-and-forget.

A ``TaskSet`` keeps a strong reference to each task it starts and, when one ends,
looks at how it ended:

- a *per-task* coroutine (``spawn``: a role hop, a task coming home, a tool-pool
  request, a queued send) that raised is logged once, with the task id, and its
  ``on_error`` handler decides what happens to the work (fail the task, re-issue it,
  write it anyway);
- one of the process's *own loops* (``loop``: receiver, leases, source, heartbeats)
  that raised, or that returned although it should run until cancelled, is fatal:
  ``fatal`` keeps the first such exception and ``on_fatal`` is called, which stops
  the process so that it exits non-zero and the driver restarts it.

Cancellation is not an error (that is how a process stops its own tasks).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger("slurmgen.tasks")

OnError = Callable[[BaseException], None]


class LoopEnded(RuntimeError):
    """A loop meant to run until the process stops returned on its own."""


class TaskSet:
    def __init__(self, owner: str, on_fatal: Callable[[BaseException], None] | None = None) -> None:
        self.owner = owner
        self.on_fatal = on_fatal
        self.fatal: BaseException | None = None
        self.failures = 0  # per-task coroutines that raised (each logged once)
        self._tasks: set[asyncio.Future[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Awaitable[Any], *, kind: str, task_id: str = "",
              on_error: OnError | None = None) -> asyncio.Future[Any]:
        """Run one unit of work; if it raises, log it once and call ``on_error(exc)``."""
        fut = asyncio.ensure_future(work)
        self._tasks.add(fut)
        fut.add_done_callback(lambda f: self._done(f, kind, task_id, on_error))
        return fut

    def loop(self, work: Awaitable[Any], *, kind: str, may_return: bool = False) -> asyncio.Future[Any]:
        """Run one of the process's own loops: an exception (or, unless ``may_return``, a
        return) ends the process."""
        fut = asyncio.ensure_future(work)
        self._tasks.add(fut)
        fut.add_done_callback(lambda f: self._loop_done(f, kind, may_return))
        return fut

    def _done(self, fut: asyncio.Future[Any], kind: str, task_id: str, on_error: OnError | None) -> None:
        self._tasks.discard(fut)
        if fut.cancelled() or fut.exception() is None:
            return
        exc = fut.exception()
        assert exc is not None
        self.failures += 1
        log.error("task=%s %s of %s failed: %s: %s", task_id or "-", kind, self.owner, type(exc).__name__, exc,
                  exc_info=exc)
        if on_error is None:
            return
        try:
            on_error(exc)
        except BaseException as again:  # noqa: BLE001 - the handler itself failed: nothing local can save the work
            self.fail(f"the {kind} failure handler", again)

    def _loop_done(self, fut: asyncio.Future[Any], kind: str, may_return: bool) -> None:
        self._tasks.discard(fut)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            if may_return:
                return
            exc = LoopEnded(f"{kind} loop of {self.owner} returned")
        self.fail(f"the {kind} loop", exc)

    def fail(self, what: str, exc: BaseException) -> None:
        """Something the process cannot go on without failed: log it, stop the process."""
        log.critical("%s of %s failed: %s: %s; the process stops (the driver restarts it)", what, self.owner,
                     type(exc).__name__, exc, exc_info=exc)
        if self.fatal is None:
            self.fatal = exc
            if self.on_fatal is not None:
                self.on_fatal(exc)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until they have ended."""
        pending = list(self._tasks)
        for fut in pending:
            fut.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
