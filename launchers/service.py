"""Supervise one HTTP service (simulator, vLLM, SGLang): start it on a free port, wait
for its health check, then register it and keep it registered while it lives.

    python -m slurmgen.launchers.service --run-dir RUN --name sim-0 --kind llm \
        --model M -- python -m slurmgen.sim --port {port} ...

``{host}`` and ``{port}`` in the command are replaced. The service is registered only
after ``--health-path`` answers 200 and (with ``--model``) ``/v1/models`` lists the model;
if that does not happen within ``--ready-timeout`` the supervisor exits 1 with a message
naming the log.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import msgspec
import zmq.asyncio

from slurmgen.errors import StartupError
from slurmgen.proc.lifecycle import until_stopped
from slurmgen.proc.lifeline import die_with_parent
from slurmgen.proc.logs import setup_logging
from slurmgen.proc.metrics import write_target
from slurmgen.proc.tasks import TaskSet
from slurmgen.protocol import Member
from slurmgen.registry.membership import RegistryClient
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.transport import hosts, ports

log = logging.getLogger("slurmgen.service")


def free_port(host: str) -> int:
    """A port free now on ``host`` (in cluster.port_range when set); the server binds it next."""
    def probe(port: int) -> int:
        with socket.socket() as s:
            s.bind((host, port))
            return int(s.getsockname()[1])

    return ports.bind_in_range(probe)


async def _answers(http: aiohttp.ClientSession, url: str, health_path: str, model: str) -> bool:
    """The service at ``url`` is healthy and is this one: it serves ``model``. (Another process
    can take the port between ``free_port`` and the server's bind, and answer the health check:
    a /metrics exporter answers any path; the server then fails to bind and exits.)"""
    async with http.get(url + health_path) as resp:
        if resp.status != 200:
            return False
    if not model:
        return True
    async with http.get(url + "/v1/models") as resp:
        raw = await resp.read() if resp.status == 200 else b""
    try:
        listed = msgspec.json.decode(raw).get("data") or []
    except (msgspec.DecodeError, AttributeError):
        return False
    return any(isinstance(m, dict) and m.get("id") == model for m in listed)


async def wait_healthy(url: str, health_path: str, model: str, child: asyncio.subprocess.Process, timeout_s: float,
                       log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            if child.returncode is not None:
                raise StartupError(f"the service exited with code {child.returncode} before it was healthy; see {log_path}")
            try:
                if await _answers(http, url, health_path, model):
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise StartupError(f"{url}{health_path} not healthy after {timeout_s:.0f} s; see {log_path} "
                                   "(raise llm.ready_timeout_s if the server is just slow to load)")
            await asyncio.sleep(0.2)


async def stop_child(child: asyncio.subprocess.Process, grace_s: float = 10.0) -> None:
    if child.returncode is not None:
        return
    child.terminate()
    try:
        await asyncio.wait_for(child.wait(), grace_s)
    except asyncio.TimeoutError:
        child.kill()
        await child.wait()


async def register(args: argparse.Namespace, run: RunDir, url: str, ctx: zmq.asyncio.Context,
                   tasks: TaskSet) -> RegistryClient:
    member = Member(peer_id=args.name, kind=args.kind, address=url, node=hosts.node_name(),
                    capacity=args.capacity, model=args.model, pool=args.pool, pid=os.getpid())
    client = RegistryClient(ctx, run.registry_address, member, heartbeat_s=args.heartbeat_s, liveness=5,
                            tasks=tasks)
    await client.start(args.ready_timeout)
    return client


async def supervise(args: argparse.Namespace, run: RunDir) -> int:
    args.host = hosts.default_host("slurm" if args.host == "auto" else "local", args.host)
    run.not_ready(args.name).unlink(missing_ok=True)
    port = free_port(args.host)
    argv = [a.replace("{port}", str(port)).replace("{host}", args.host) for a in args.command]
    log_path = run.log(args.name)
    stop = asyncio.Event()  # SIGTERM / SIGINT, even while the server is still loading
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with open(log_path, "ab") as out:
        child = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=out, preexec_fn=die_with_parent)
    url = f"http://{args.host}:{port}"
    ctx = zmq.asyncio.Context()
    # the registry client's loops: if one fails, the supervisor stops its service and exits 1
    tasks = TaskSet(args.name, on_fatal=lambda exc: stop.set())
    try:
        await until_stopped(stop, wait_healthy(url, args.health_path, args.model, child, args.ready_timeout, log_path))
        client = None if stop.is_set() else await until_stopped(stop, register(args, run, url, ctx, tasks))
    except StartupError as exc:
        log.error("%s", exc)
        print(f"slurmgen service {args.name}: {exc}", file=sys.stderr)
        write_atomic(run.not_ready(args.name), str(exc).encode())
        await stop_child(child)
        return 1
    if client is None:
        log.info("%s stopped while starting", args.name)
        await stop_child(child)
        return 0
    log.info("%s healthy at %s and registered", args.name, url)
    code = await serve(args, run, child, client, ctx, stop, port)
    if tasks.fatal is not None:
        print(f"slurmgen service {args.name}: its registry client failed: {tasks.fatal!r}; "
              f"see {run.log(args.name + '.supervisor')}", file=sys.stderr)
        return 1
    return code


async def serve(args: argparse.Namespace, run: RunDir, child: asyncio.subprocess.Process, client: RegistryClient,
                ctx: zmq.asyncio.Context, stop: asyncio.Event, port: int) -> int:
    """Keep the healthy service registered until it exits or the supervisor is stopped."""
    labels = {"component": args.kind, **({"pool": args.pool} if args.pool else {})}
    targets = write_target(run.root, args.name, f"{args.host}:{port}", labels)  # its /metrics
    waiter = asyncio.create_task(child.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for t in (waiter, stopper):  # whichever did not end: owned here, ended here
        t.cancel()
    await client.close()
    for path in targets:
        path.unlink(missing_ok=True)
    ctx.term()
    code = child.returncode
    await stop_child(child)
    if code is not None:
        tail = log_tail(run.log(args.name))
        log.error("%s exited on its own with code %s (requests in flight were lost); its last log lines:\n%s",
                  args.name, code, tail)
        print(f"slurmgen service {args.name}: the server exited on its own with code {code}; its last log "
              f"lines ({run.log(args.name)}):\n{tail}", file=sys.stderr, flush=True)
        return 1
    return 0


def log_tail(path: Path, lines: int = 8, max_bytes: int = 64 * 1024) -> str:
    """The last non-empty lines of a log (e.g. vLLM's EngineDeadError traceback)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join([ln[-400:] for ln in text.splitlines() if ln.strip()][-lines:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slurmgen.launchers.service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--kind", default="llm")
    parser.add_argument("--model", default="")
    parser.add_argument("--pool", default="", help="the LLM pool it serves (llm services)")
    parser.add_argument("--host", default="127.0.0.1", help='bind address; "auto" = this node\'s address')
    parser.add_argument("--capacity", type=int, default=0)
    parser.add_argument("--health-path", default="/health")
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--heartbeat-s", type=float, default=1.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the service command after --")
    run = RunDir(Path(args.run_dir)).make()
    setup_logging(run.log(f"{args.name}.supervisor"))
    sys.exit(asyncio.run(supervise(args, run)))


if __name__ == "__main__":
    main()
