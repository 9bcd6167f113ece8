"""One driver per run directory: a live driver's lock refuses a second one; a dead one's is taken over."""

import json
import os
import socket
import subprocess
import time

import pytest

from slurmgen.errors import ConfigError
from slurmgen.run import lock as runlock
from slurmgen.rundir import RunDir


def held_by(run: RunDir, pid: int, host: str, age_s: float = 0.0) -> None:
    lock = runlock.path(run)
    lock.write_text(json.dumps({"pid": pid, "host": host, "started_at": time.time() - age_s}))
    os.utime(lock, (time.time() - age_s, time.time() - age_s))


def test_a_live_driver_on_this_host_refuses_a_second(tmp_path):
    run = RunDir(tmp_path).make()
    live = subprocess.Popen(["sleep", "30"])
    try:
        held_by(run, live.pid, socket.gethostname())
        with pytest.raises(ConfigError, match=f"pid {live.pid} on host {socket.gethostname()}"):
            runlock.acquire(run)
    finally:
        live.kill()
        live.wait()


def test_a_lock_of_a_dead_pid_or_a_reused_one_is_taken_over(tmp_path):
    run = RunDir(tmp_path).make()
    dead = subprocess.Popen(["true"])
    dead.wait()
    held_by(run, dead.pid, socket.gethostname())
    mine = runlock.acquire(run)
    assert mine.pid == os.getpid()
    runlock.release(run, mine)
    assert not runlock.path(run).exists()
    other = subprocess.Popen(["sleep", "30"])  # a live pid started after the lock: a dead driver's pid reused
    try:
        held_by(run, other.pid, socket.gethostname(), age_s=60)
        assert runlock.acquire(run).pid == os.getpid()
    finally:
        other.kill()
        other.wait()


def test_another_hosts_lock_counts_while_it_is_refreshed(tmp_path):
    run = RunDir(tmp_path).make()
    held_by(run, 4242, "node-elsewhere")
    with pytest.raises(ConfigError, match="pid 4242 on host node-elsewhere"):
        runlock.acquire(run)
    held_by(run, 4242, "node-elsewhere", age_s=runlock.STALE_S + 5)
    assert runlock.acquire(run).host == socket.gethostname()
