"""A long-lived process: serve until SIGTERM / SIGINT, then close, whatever happened."""

from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable


async def serve_until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]],
                                close: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(stop)
    finally:
        await close()
