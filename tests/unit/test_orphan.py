"""The driver's heartbeat: a SLURM job stops its process once the driver stops beating."""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

from slurmgen.launchers import orphan
from slurmgen.launchers.jobs import SpecJob
from slurmgen.launchers.orphan import Beat, Watch
from slurmgen.run.plan import ProcessSpec


def test_a_beating_driver_is_never_orphaned_a_silent_one_is(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(orphan, "BEAT_S", 0.0)
    path = tmp_path / "state" / "driver.alive"
    beat, watch = Beat(path), Watch(path, timeout_s=0.6)
    for _ in range(8):  # 1.6 s of beats, longer than the timeout
        beat.touch()
        assert not watch.orphaned()
        time.sleep(0.2)
    time.sleep(0.8)
    assert watch.orphaned() and watch.silent_s() > 0.6


def test_no_heartbeat_file_at_all_orphans_after_the_timeout_and_zero_disables(tmp_path: Path) -> None:
    missing = tmp_path / "driver.alive"
    watch, never = Watch(missing, timeout_s=0.3), Watch(missing, timeout_s=0)
    assert not watch.orphaned()
    time.sleep(0.5)
    assert watch.orphaned() and not never.orphaned()


def test_the_beat_writes_at_most_every_beat_s(tmp_path: Path) -> None:
    path = tmp_path / "driver.alive"
    beat = Beat(path)
    beat.touch()
    first = path.stat().st_mtime_ns
    os.utime(path, ns=(1, 1))
    beat.touch()  # within BEAT_S: no write
    assert path.stat().st_mtime_ns == 1 != first


def test_an_orphaned_job_stops_its_process_and_ends_cleanly(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("slurmgen.launchers.jobs.CHECK_S", 0.1)
    marker = tmp_path / "stopped"
    code = (f"import signal, sys, time\n"
            f"signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'w').write('drained'), sys.exit(0)))\n"
            f"time.sleep(60)\n")
    spec = ProcessSpec("peer-0", "peer", [sys.executable, "-c", code])
    job = SpecJob(str(tmp_path / "logs"), grace_s=5, heartbeat=str(tmp_path / "driver.alive"), orphan_s=1.0)
    job = pickle.loads(pickle.dumps(job))  # as submitit ships it to the node
    t0 = time.monotonic()
    assert job(spec) == 0
    assert 1.0 < time.monotonic() - t0 < 30
    assert marker.read_text() == "drained", "SIGTERM first: the process drains"
    said = capsys.readouterr().out  # the SLURM job's log
    assert "peer-0: the driver has not beaten for" in said and "cluster.orphan_timeout_s=1" in said
