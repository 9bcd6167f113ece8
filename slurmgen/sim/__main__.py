"""``python -m slurmgen.sim``: serve one simulated vLLM replica.

Prints ``listening on http://HOST:PORT`` (flushed) once it accepts connections, so a
launcher can use ``--port 0``. SIGTERM or SIGINT: stop accepting, let in-flight
requests finish for a moment, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from slurmgen.errors import SlurmgenError
from slurmgen.proc import fdlimit
from slurmgen.sim.latency import POLICIES, PROFILES
from slurmgen.sim.server import SimOptions, SimServer

_SHUTDOWN_GRACE_S = 2.0  # in-flight requests get this long after SIGTERM


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SimOptions()
    p = argparse.ArgumentParser(prog="python -m slurmgen.sim", description="Simulated vLLM server (OpenAI API).")
    p.add_argument("--run-dir", default="", help="run directory served (informational: shows in ps)")
    p.add_argument("--name", default="sim", help="replica name (informational)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 = pick a free port")
    p.add_argument("--model", default=defaults.model, help="served model name")
    p.add_argument("--script", default=defaults.script, help="content script 'package.module:function' or 'generic'")
    p.add_argument("--profile", default=defaults.profile, choices=sorted(PROFILES))
    p.add_argument("--time-scale", type=float, default=defaults.time_scale, help="speed-up; 0 = never sleep")
    p.add_argument("--max-model-len", type=int, default=defaults.max_model_len)
    p.add_argument("--seed", type=int, default=0, help="seed of the step-time jitter")
    p.add_argument("--rate-limit", type=float, default=0.0, metavar="RPM",
                   help="answer chat requests over RPM per minute with 429 and Retry-After; 0 = no limit")
    p.add_argument("--rate-burst", type=int, default=0, metavar="N",
                   help="requests the rate limit lets through at once; 0 = one second's worth")
    p.add_argument("--api-key", default="", help="require 'Authorization: Bearer KEY' (as vLLM's --api-key)")
    p.add_argument("--die-on", default="", metavar="TEXT",
                   help="exit (code 0) on a chat request whose messages contain TEXT: a poison request, for tests")
    p.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=defaults.prefix_caching,
                   help="reuse the KV of cached prompt prefixes (vLLM's flag; on by default, as in vLLM)")
    p.add_argument("--scheduling-policy", default=defaults.scheduling_policy, choices=POLICIES,
                   help="priority: order requests by their `priority` field, lower first (vLLM's flag)")
    p.add_argument("--block-size", type=int, default=0, help="tokens per KV block; 0 = the profile's")
    p.add_argument("--num-gpu-blocks-override", type=int, default=0, metavar="N",
                   help="KV cache capacity in blocks; 0 = the profile's")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


async def serve(options: SimOptions, host: str, port: int) -> None:
    server = SimServer(options)
    runner = web.AppRunner(server.app(), access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound_port = runner.addresses[0][1]
    print(f"listening on http://{host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = SimOptions(
        model=args.model,
        profile=args.profile,
        time_scale=args.time_scale,
        max_model_len=args.max_model_len,
        script=args.script,
        seed=args.seed,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        api_key=args.api_key,
        die_on=args.die_on,
        prefix_caching=args.enable_prefix_caching,
        scheduling_policy=args.scheduling_policy,
        block_size=args.block_size,
        num_gpu_blocks=args.num_gpu_blocks_override,
    )
    try:
        fdlimit.raise_nofile()  # a socket per request in flight
        _run(serve(options, args.host, args.port))
    except (SlurmgenError, ValueError, OSError) as exc:
        print(f"slurmgen.sim: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
