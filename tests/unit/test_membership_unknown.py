"""A process the registry does not know (expired while cut off, or the registry restarted)
re-registers once per heartbeat period, however many heartbeats come back refused, and says
so once (the peer then starts its credits over)."""

import asyncio

import zmq.asyncio

from slurmgen.protocol import Member, Refused
from slurmgen.registry.membership import RegistryClient


class _Dealer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, frame: bytes) -> None:
        self.sent.append(frame)


def test_a_burst_of_refusals_is_one_re_registration(tmp_path):
    async def go() -> tuple[int, int]:
        unknown: list[int] = []
        ctx = zmq.asyncio.Context()
        client = RegistryClient(ctx, tmp_path / "registry.json", Member(peer_id="p", kind="peer", address="x"),
                                heartbeat_s=0.2, liveness=5, on_unknown=lambda: unknown.append(1))
        client._dealer = dealer = _Dealer()  # type: ignore[assignment]
        for _ in range(6):  # heartbeats queued while cut off, all answered at once
            client._on_reply(Refused(reason="unknown peer p"))
        await asyncio.sleep(0.25)
        client._on_reply(Refused(reason="unknown peer p"))  # still unknown a period later: ask again
        await asyncio.sleep(0.01)
        ctx.term()
        return len(unknown), len(dealer.sent)

    assert asyncio.run(go()) == (2, 2)
