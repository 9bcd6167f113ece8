"""The membership table: pure logic, injectable clock (no sockets here)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from slurmgen.protocol import Member, Table


@dataclass
class PeerTable:
    heartbeat_s: float
    liveness: int  # missed heartbeats before a member expires
    clock: Callable[[], float] = time.monotonic
    version: int = 0
    _members: dict[str, Member] = field(default_factory=dict)
    _expires: dict[str, float] = field(default_factory=dict)

    def register(self, member: Member) -> None:
        changed = self._members.get(member.peer_id) != member
        self._members[member.peer_id] = member
        self._touch(member.peer_id)
        if changed:
            self.version += 1

    def heartbeat(self, peer_id: str) -> bool:
        """Refresh a member; False if it is unknown (it must register again)."""
        if peer_id not in self._members:
            return False
        self._touch(peer_id)
        return True

    def remove(self, peer_id: str) -> bool:
        if self._members.pop(peer_id, None) is None:
            return False
        self._expires.pop(peer_id, None)
        self.version += 1
        return True

    def expire(self) -> list[str]:
        """Drop members whose heartbeats stopped; return their ids."""
        now = self.clock()
        gone = [pid for pid, deadline in self._expires.items() if deadline < now]
        for pid in gone:
            self.remove(pid)
        return gone

    def table(self) -> Table:
        return Table(version=self.version, members=sorted(self._members.values(), key=lambda m: m.peer_id))

    def _touch(self, peer_id: str) -> None:
        self._expires[peer_id] = self.clock() + self.heartbeat_s * self.liveness
