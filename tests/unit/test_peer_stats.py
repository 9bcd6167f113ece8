"""A peer's stats file: the one type the peer writes and status, the watchdog, the summary
and the benchmarks read; its JSON field names stay those of the run directories already
written, so an older run still reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from slurmgen.run.status import collect, document
from slurmgen.run.summary import CrossNode, cross_node, endpoint_stats, spill_counts
from slurmgen.run.watchdog import read_peer_stats
from slurmgen.rundir import RunDir
from slurmgen.runtime.stats import PeerStats, read_all
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))

from bench.harness import peers_in_flight
from bench.harness import read_peer_stats as bench_peer_stats

WRITTEN = ["peer_id", "shard", "received", "cpu_s", "llm", "llm_limiter", "in_flight", "held", "llm_outstanding",
           "issued", "reissued", "retried", "written", "duplicates", "refused_frames", "tools", "oldest_in_flight",
           "held_ids", "task_failures", "spill", "cross_node", "kv_admission"]

# as a slurmgen of a few weeks ago wrote it: no token counters per endpoint, no cpu_s, no limiter,
# no task_failures, cross_node and spill empty
OLDER = {"peer_id": "peer-0.abc", "shard": 0, "received": {"orch": 24, "orch_home": 10, "bytes_orch_sent": 1000},
         "llm": {"http://a:1": {"requests": 35, "ok": 34, "errors": 1, "retries": 1, "rate_limited": 0,
                                "latency_s": 9.5, "pool": "default", "model": "sim"}},
         "in_flight": 3, "held": 2, "llm_outstanding": {"http://a:1": 2}, "issued": 25, "reissued": 1, "retried": 0,
         "written": 22, "duplicates": 0, "refused_frames": 0, "tools": {"open": 1, "call": 4},
         "oldest_in_flight": ["r7:0"], "held_ids": ["r7:0"], "spill": {}, "cross_node": {}}


def test_the_file_keeps_its_field_names_in_order() -> None:
    assert list(json.loads(msgspec.json.encode(PeerStats(peer_id="p", shard=0)))) == WRITTEN


def test_an_older_runs_stats_file_reads_everywhere(tmp_path: Path) -> None:
    run = RunDir(tmp_path).make()
    run.stats("peer-peer-0.abc").write_text(json.dumps(OLDER))
    run.stats("peer-peer-1.new").write_text('{"peer_id": ')  # being rewritten as we read: left out
    [stats] = read_all(run.state)
    assert stats.llm["http://a:1"].ok == 34 and stats.cpu_s == 0.0 and stats.cross_node == CrossNode()
    doc = document(collect(run, 0.0), run, 0.0)
    assert doc.in_flight == 3 and doc.endpoints_outstanding == {"http://a:1": 2} and doc.llm_requests == 35
    assert [s.ok for s in endpoint_stats(run.state)] == [34] and spill_counts(run.state) == {}
    assert cross_node(run.state) == CrossNode()
    assert [p.oldest_in_flight for _, p in read_peer_stats(run).values()] == [["r7:0"]]
    assert peers_in_flight(tmp_path) == 3
    [as_json] = bench_peer_stats(tmp_path)
    assert as_json["tools"] == {"open": 1, "call": 4} and as_json["received"] == OLDER["received"]
