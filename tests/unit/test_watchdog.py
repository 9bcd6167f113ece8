"""The driver's watchdog: report after run.stall_s, stop after run.stall_stop_s, forget a stall on progress."""

import json
import os

import msgspec
import pytest

from slurmgen.config.types import RunConf
from slurmgen.errors import ConfigError, RunStalled
from slurmgen.run.watchdog import StallReport, Watchdog, check_conf
from slurmgen.rundir import RunDir


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def peer_stats(run: RunDir, name: str, **fields) -> None:
    base = {"peer_id": name, "shard": 0, "in_flight": 1, "held": 1, "issued": 5, "written": 4,
            "received": {"orch": 10, "hold": 3}, "llm_outstanding": {"http://a:1": 1, "http://b:2": 0},
            "oldest_in_flight": ["r3:0"], "held_ids": ["r3:0"]}
    run.stats(f"peer-{name}").write_text(json.dumps({**base, **fields}))


def make(tmp_path, **conf):
    run = RunDir(tmp_path).make()
    (run.logs / "peer-0.log").write_text("x INFO fine\n2026 ERROR slurmgen.llm pid=1 task=r3:0 it broke\n")
    clock, said = Clock(), []
    dog = Watchdog(run, RunConf(stall_s=10, stall_stop_s=30, **conf), expected=5, out=said.append, clock=clock)
    return run, dog, clock, said


def test_reports_after_stall_s_then_stops_after_stall_stop_s(tmp_path):
    run, dog, clock, said = make(tmp_path)
    peer_stats(run, "p0")
    dog.check(4)
    clock.t = 9
    dog.check(4)
    assert not said and not (run.state / "stall.json").exists()
    peer_stats(run, "p0", received={"orch": 10, "hold": 9})  # Hold renewals are not progress
    clock.t = 11
    dog.check(4)
    assert len(said) == 1 and "r3:0" in said[0] and "http://a:1 (1 outstanding)" in said[0] and "it broke" in said[0]
    report = msgspec.json.decode((run.state / "stall.json").read_bytes(), type=StallReport)
    assert report.waiting_tasks == ["r3:0"] and report.endpoints["http://a:1"] == 1 and report.records == 4
    assert report.peers[0].llm_outstanding == {"http://a:1": 1}
    assert any("it broke" in ln for ln in report.log_errors["logs/peer-0.log"])
    clock.t = 31
    with pytest.raises(RunStalled, match="stall_stop_s"):
        dog.check(4)


def test_progress_ends_the_stall_and_removes_stall_json(tmp_path):
    run, dog, clock, said = make(tmp_path)
    peer_stats(run, "p0")
    dog.check(4)
    clock.t = 12
    dog.check(4)
    assert (run.state / "stall.json").exists()
    peer_stats(run, "p0", received={"orch": 11})  # a hop: the task moved
    clock.t = 13
    dog.check(4)
    assert not (run.state / "stall.json").exists() and "progress again" in said[-1]
    clock.t = 40
    dog.check(4)  # 27 s since the move: reported again, not stopped
    assert (run.state / "stall.json").exists()


def test_report_only_never_stops_and_a_finished_run_is_not_stalled(tmp_path):
    run, dog, clock, said = make(tmp_path, stall_action="report")
    peer_stats(run, "p0")
    dog.check(4)
    clock.t = 1000
    dog.check(4)
    assert len(said) == 1
    run2, dog2, clock2, said2 = make(tmp_path / "b")
    peer_stats(run2, "p0")
    dog2.check(5)
    clock2.t = 1000
    dog2.check(5)  # every task written: waiting for the done markers is not a stall
    assert not said2


def test_nothing_issued_yet_is_not_a_stall(tmp_path):
    """Jobs waiting in a SLURM queue, servers loading: the watch starts with the first task issued."""
    run, dog, clock, said = make(tmp_path)
    peer_stats(run, "old", issued=7)  # from an earlier invocation of the run
    os.utime(run.stats("peer-old"), (1, 1))
    peer_stats(run, "p0", issued=0)  # this invocation's peer, still waiting for its servers
    for t in (0, 100, 2000):
        clock.t = t
        dog.check(3)
    assert not said and not dog.armed
    peer_stats(run, "p0", issued=2)  # it started: from now on, no move for stall_s is a stall
    clock.t = 2001
    dog.check(3)
    clock.t = 2012
    dog.check(3)
    assert dog.armed and len(said) == 1


def test_bad_knobs_are_refused():
    with pytest.raises(ConfigError, match="report, stop"):
        check_conf(RunConf(stall_action="kill"))
    with pytest.raises(ConfigError, match="longer"):
        check_conf(RunConf(stall_s=60, stall_stop_s=30))


def test_it_reads_a_peers_llm_counters_as_the_peer_writes_them(tmp_path):
    """The per-endpoint entry as Peer._stats writes it (floats and strings beside the counts):
    answers moving are progress. (A stricter type here once made every stats file unreadable.)"""
    from slurmgen.llm.types import EndpointStats
    from slurmgen.run.watchdog import read_peer_stats

    def llm(ok: int) -> dict:
        return {"http://a:1": msgspec.to_builtins(EndpointStats(requests=ok + 1, ok=ok, latency_s=0.25 * ok,
                                                                pool="teacher", model="sim-llama-3.1-70b"))}

    run, dog, clock, said = make(tmp_path)
    peer_stats(run, "p0", llm=llm(1))
    assert set(read_peer_stats(run)) == {"stats-peer-p0.json"}
    dog.check(4)
    for t in (8, 16, 24, 32):  # no record for 32 s, but the conversations' LLM calls go on
        clock.t = t
        peer_stats(run, "p0", llm=llm(t))
        dog.check(4)
    assert said == [] and not (run.state / "stall.json").exists()


def test_reissues_into_a_dying_server_are_not_progress(tmp_path):
    """A task issued again and again (its server dies under it, its LLM attempts fail) moves no
    record and gets no answer: the run is stalled and stops, however busy its counters look."""
    from slurmgen.llm.types import EndpointStats

    run, dog, clock, said = make(tmp_path)
    peer_stats(run, "p0")
    dog.check(4)
    for n, t in enumerate((8, 16, 24, 32), start=1):
        clock.t = t
        failing = {"http://a:1": msgspec.to_builtins(EndpointStats(requests=5 * n, errors=5 * n))}
        peer_stats(run, "p0", reissued=n, retried=n, received={"orch": 10 + 2 * n}, llm=failing)
        if t < 30:
            dog.check(4)
    assert len(said) == 1 and "stalled" in said[0]
    with pytest.raises(RunStalled):
        dog.check(4)
