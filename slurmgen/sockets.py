"""The one place that creates ZeroMQ sockets and sets their options."""

from __future__ import annotations

import socket

import zmq
import zmq.asyncio

HWM = 100_000


def _common(sock: zmq.Socket) -> zmq.Socket:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    return sock


def bind_router(ctx: zmq.asyncio.Context, host: str) -> tuple[zmq.asyncio.Socket, str]:
    """A ROUTER inbox bound to an ephemeral port; returns it and its real address."""
    sock = _common(ctx.socket(zmq.ROUTER))
    sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
    sock.bind(f"tcp://{host}:0")
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def bind_pub(ctx: zmq.asyncio.Context, host: str) -> tuple[zmq.asyncio.Socket, str]:
    sock = _common(ctx.socket(zmq.PUB))
    sock.bind(f"tcp://{host}:0")
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def connect_dealer(ctx: zmq.asyncio.Context, address: str, identity: str) -> zmq.asyncio.Socket:
    sock = _common(ctx.socket(zmq.DEALER))
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    sock.connect(address)
    return sock


def connect_sub(ctx: zmq.asyncio.Context, address: str) -> zmq.asyncio.Socket:
    sock = _common(ctx.socket(zmq.SUB))
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(address)
    return sock


def default_host(cluster_kind: str, configured: str) -> str:
    """Address to bind: the configured one, loopback locally, the node's IP on a cluster."""
    if configured and configured != "auto":
        return configured
    if cluster_kind == "local" and configured != "auto":
        return "127.0.0.1"
    return socket.gethostbyname(socket.gethostname())
