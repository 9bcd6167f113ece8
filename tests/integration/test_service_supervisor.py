"""The service supervisor obeys SIGTERM at every stage: while its server is still loading
and while the registry does not answer (a driver killed at startup leaves nothing)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO


def supervisor(run_dir: Path, *command: str, health: str = "/health") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "slurmgen.launchers.service", "--run-dir", str(run_dir),
                             "--name", "svc-0", "--ready-timeout", "120", "--health-path", health, "--", *command],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    return subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode == 0


@pytest.mark.parametrize("stage", ["loading", "registering"])
def test_sigterm_while_starting_stops_the_server_and_exits(tmp_path: Path, stage: str) -> None:
    if stage == "loading":  # a server that never answers its health check
        command = [sys.executable, "-c", "import time; time.sleep(300)"]
        health = "/health"
    else:  # healthy at once, but no registry.json: registration waits
        command = [sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"]
        health = "/"
    proc = supervisor(tmp_path / "run", *command, health=health)
    deadline = time.monotonic() + 30
    while not child_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    server = child_pids(proc.pid)
    assert server, "the supervisor started its server"
    time.sleep(2.0)  # loading, or healthy and waiting for the registry
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)  # was: the whole ready timeout (120 s)
    assert proc.returncode == 0, out
    assert not alive(server[0]), "the server was stopped with its supervisor"
    log = (tmp_path / "run" / "logs" / "svc-0.supervisor.log").read_text()
    assert "svc-0 stopped while starting" in log
    assert not (tmp_path / "run" / "state" / "svc-0.not-ready").exists(), "stopped is not 'never ready'"


def test_a_port_answered_by_another_server_is_not_taken_for_the_model_server(tmp_path: Path) -> None:
    """Something else answers the health check on the port (another process took it before the
    server could bind it): not registered; the supervisor gives up after --ready-timeout."""
    proc = subprocess.Popen([sys.executable, "-m", "slurmgen.launchers.service", "--run-dir", str(tmp_path / "run"),
                             "--name", "svc-0", "--model", "m", "--ready-timeout", "3", "--health-path", "/", "--",
                             sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "not healthy after 3 s" in out, out
