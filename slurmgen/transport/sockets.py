"""The one place that creates ZeroMQ sockets and sets their options (incl. CurveZMQ)."""

from __future__ import annotations

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from slurmgen.transport import ports
from slurmgen.transport.codec import MAX_FRAME_BYTES
from slurmgen.transport.curve import CurveKeys

HWM = 100_000
# ZMTP heartbeats: a connection that hears nothing for HEARTBEAT_TIMEOUT_MS (its node died or
# was cut off) is closed and connected again, instead of waiting out TCP's retransmission
# backoff (minutes after a long cut); a connect attempt gives up after CONNECT_TIMEOUT_MS and
# is tried again, so that a link that comes back is used within seconds
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_MS = 2000


class Sockets:
    """Creates sockets for one process; with keys, every socket is CURVE-secured."""

    def __init__(self, ctx: zmq.asyncio.Context, keys: CurveKeys | None) -> None:
        self.ctx = ctx
        self.keys = keys
        self._auth: AsyncioAuthenticator | None = None

    def _common(self, kind: int) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, HWM)
        sock.setsockopt(zmq.RCVHWM, HWM)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        sock.setsockopt(zmq.CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS)
        return sock

    def _serve(self, sock: zmq.asyncio.Socket) -> None:
        if self.keys is None:
            return
        if self._auth is None:  # ZAP: admit only the run's client key
            self._auth = AsyncioAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(self.keys.allowed_dir))
        sock.curve_secretkey = self.keys.server_secret
        sock.curve_publickey = self.keys.server_public
        sock.curve_server = True

    def _client(self, sock: zmq.asyncio.Socket) -> None:
        if self.keys is None:
            return
        sock.curve_serverkey = self.keys.server_public
        sock.curve_publickey = self.keys.client_public
        sock.curve_secretkey = self.keys.client_secret

    def bind_router(self, host: str) -> tuple[zmq.asyncio.Socket, str]:
        """A ROUTER inbox bound to an ephemeral port; returns it and its real address."""
        sock = self._common(zmq.ROUTER)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)  # a sender of a bigger frame is disconnected
        self._serve(sock)
        ports.bind_zmq(sock, host)
        return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def bind_pub(self, host: str) -> tuple[zmq.asyncio.Socket, str]:
        sock = self._common(zmq.PUB)
        self._serve(sock)
        ports.bind_zmq(sock, host)
        return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def connect_dealer(self, address: str, identity: str) -> zmq.asyncio.Socket:
        sock = self._common(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity.encode())
        self._client(sock)
        sock.connect(address)
        return sock

    def connect_sub(self, address: str) -> zmq.asyncio.Socket:
        sock = self._common(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._client(sock)
        sock.connect(address)
        return sock

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
