"""A peer's counters, as it writes them to RUN/state/stats-peer-<peer_id>.json.

Each peer rewrites its file every ``run.lease_renew_s`` (one file per incarnation, so a
killed peer's last counts survive its restart) and once more in its shard's ``.done``
file. ``slurmgen status``, the driver's watchdog and summary, and the benchmarks read
them back through this one type; every field but the peer's id and shard has a default,
so the files of an older slurmgen still read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from slurmgen.llm.pressure import KVAdmission
from slurmgen.llm.ratelimit import LimiterStats
from slurmgen.llm.types import EndpointStats


class CrossNode(msgspec.Struct, kw_only=True):
    """What crossed the network between nodes, summed over the peers' stats files (every
    incarnation): counted where it is sent, so nothing twice. LLM requests are not in it."""

    bytes_sent: int = 0  # frames peers sent to peers on other nodes: tasks, credits, leases, spill fetches and answers
    frames_sent: int = 0
    spill_bytes_fetched: int = 0  # spilled payload bytes a peer fetched from a peer on another node
    spill_fetches: int = 0  # such fetch requests
    tool_bytes: int = 0  # requests to and replies from tool-pool members on other nodes

    def add(self, other: CrossNode) -> None:
        for name in self.__struct_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class PeerStats(msgspec.Struct, kw_only=True):
    peer_id: str
    shard: int
    received: dict[str, int] = {}  # frames received by kind (orch, orch_home, orch_local, hold, credit, fetch,
    # malformed, ...) and bytes sent by kind (bytes_orch_sent, bytes_<Message>_sent)
    cpu_s: float = 0.0  # user + system CPU seconds of the process
    llm: dict[str, EndpointStats] = {}  # per replica URL
    llm_limiter: dict[str, LimiterStats] = {}  # per LLM pool
    in_flight: int = 0  # own tasks not written yet (leases)
    held: int = 0  # tasks this peer works on or forwards right now
    llm_outstanding: dict[str, int] = {}  # replica URL -> requests sent, not answered
    issued: int = 0
    reissued: int = 0  # leases that ran out: issued again
    retried: int = 0  # retryable failures issued again
    written: int = 0
    duplicates: int = 0  # late results dropped
    refused_frames: int = 0  # inbound frames the codec refused
    tools: dict[str, int] = {}  # tool-pool session operations by kind, and "waiting" (opens queued now)
    oldest_in_flight: list[str] = []  # up to 8 own tasks, oldest issued first
    held_ids: list[str] = []  # up to 8 held tasks
    task_failures: int = 0  # background coroutines that raised
    spill: dict[str, int] = {}  # the node's spill store (slurmgen.spill.store.BlobStore.stats); {} without spill
    cross_node: CrossNode = msgspec.field(default_factory=CrossNode)
    kv_admission: KVAdmission | None = None  # under llm.scheduling_policy=priority


_DECODER = msgspec.json.Decoder(PeerStats)


def stats_files(state: Path) -> list[Path]:
    """Every peer stats file of a run (``RUN/state``), every incarnation, in name order."""
    return sorted(state.glob("stats-peer-*.json"))


def read_stats(path: Path) -> PeerStats:
    """One stats file; raises OSError / msgspec.DecodeError while it is being replaced,
    msgspec.ValidationError for a file that is no peer's stats."""
    return _DECODER.decode(path.read_bytes())


def read_all(state: Path) -> Iterator[PeerStats]:
    """Every peer stats file that reads; one being rewritten as we read is left out."""
    for path in stats_files(state):
        try:
            yield read_stats(path)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue
