"""Credit-based choice of the peer that runs a task's next role.

Each peer advertises a capacity (handler slots). A sender may have at most that many
of its messages outstanding at a receiver; the receiver returns a Credit when a
handler finishes. Among the peers hosting a role, the one with the most free credits
wins (ties: round-robin), so load spreads and nobody is flooded. Peers on the
preferred node (the sender's: where the task's spilled payloads are) go first while
any of them has a free credit, so payloads rarely cross the network.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from slurmgen.protocol import Member


class CreditRouter:
    def __init__(self) -> None:
        self._hosts: dict[str, list[str]] = {}
        self._capacity: dict[str, int] = {}
        self._node: dict[str, str] = {}
        self.outstanding: defaultdict[str, int] = defaultdict(int)
        self._rr = itertools.count()

    def update(self, peers: list[Member]) -> None:
        hosts: defaultdict[str, list[str]] = defaultdict(list)
        for m in sorted(peers, key=lambda m: m.peer_id):
            for role in m.roles:
                hosts[role].append(m.peer_id)
        self._hosts = dict(hosts)
        self._capacity = {m.peer_id: m.capacity for m in peers}
        self._node = {m.peer_id: m.node for m in peers}

    def hosts(self, role: str) -> list[str]:
        return self._hosts.get(role, [])

    def free(self, peer_id: str) -> int:
        return self._capacity.get(peer_id, 0) - self.outstanding[peer_id]

    def pick(self, role: str, node: str = "") -> str | None:
        """The peer with the most free credits for ``role`` (on ``node`` first); None when all are full."""
        hosts = self._hosts.get(role)
        if not hosts:
            return None
        if node:
            local = [h for h in hosts if self._node.get(h) == node]
            best = self._best(local) if local else None
            if best is not None:
                return best
        return self._best(hosts)

    def _best(self, hosts: list[str]) -> str | None:
        start = next(self._rr) % len(hosts)
        best, best_free = None, 0
        for i in range(len(hosts)):
            pid = hosts[(start + i) % len(hosts)]
            f = self.free(pid)
            if f > best_free:
                best, best_free = pid, f
        if best is not None:
            self.outstanding[best] += 1
        return best

    def credit(self, peer_id: str, n: int = 1) -> None:
        self.outstanding[peer_id] = max(0, self.outstanding[peer_id] - n)

    def forget(self, peer_id: str) -> None:
        self.outstanding.pop(peer_id, None)

    def reset(self) -> None:
        """Every peer's credits free again: this peer was taken for dead (the others forgot it and
        the credits they owed it); at worst receivers get more than their capacity for a while."""
        self.outstanding.clear()
