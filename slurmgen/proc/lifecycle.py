"""A long-lived process: serve until SIGTERM / SIGINT, then close, whatever happened."""

from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable, TypeVar

from slurmgen.proc.tasks import TaskSet

T = TypeVar("T")


async def serve_until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]],
                                close: Callable[[], Awaitable[None]], tasks: TaskSet | None = None) -> None:
    """``tasks``: the process's owned background tasks; if one of its loops fails, the process
    stops as if signalled, closes, and exits non-zero (SystemExit names the failure)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if tasks is not None:
        tasks.on_fatal = lambda exc: stop.set()
    try:
        await serve(stop)
    finally:
        await close()
    if tasks is not None and tasks.fatal is not None:
        exc = tasks.fatal
        raise SystemExit(f"{tasks.owner} stopped: {type(exc).__name__}: {exc} (see its log)")


async def until_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None (``work`` cancelled) if ``stop`` is set first: a process
    told to stop while it still waits for a server or the registry stops at once."""
    job = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({job, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if job.done():
        return job.result()
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)
    return None
