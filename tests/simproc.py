"""Start and stop real simulator processes (``python -m slurmgen.sim``) for tests.

Plain functions so ``tests/conftest.py`` or a test module can wrap them in fixtures::

    sim = start_sim(time_scale=20)
    ...
    assert stop_sim(sim) == 0

Also holds ``fill_max_tokens``, a sim content script for tests that need replies of a
known length (``--script tests.simproc:fill_max_tokens``).
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from slurmgen.sim.content import lorem
from slurmgen.sim.script import ScriptReply, ScriptRequest

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0


@dataclass
class SimProc:
    proc: subprocess.Popen
    url: str  # base URL, without /v1
    model: str
    stderr_path: Path
    args: list[str] = field(default_factory=list)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def sim_command(port: int = 0, **options: object) -> list[str]:
    """``python -m slurmgen.sim`` argv; options are CLI flags with ``_`` for ``-`` (True: a bare flag)."""
    argv = [sys.executable, "-m", "slurmgen.sim", "--host", "127.0.0.1", "--port", str(port)]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def start_sim(model: str = "sim-test", timeout_s: float = START_TIMEOUT_S, **options: object) -> SimProc:
    """Start a simulator on a free port; return once it printed its URL."""
    argv = sim_command(model=model, **options)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    fd, err_name = tempfile.mkstemp(prefix="sim-", suffix=".stderr")
    with os.fdopen(fd, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, cwd=REPO)
    sim = SimProc(proc=proc, url="", model=model, stderr_path=Path(err_name), args=argv)
    try:
        sim.url = _wait_for_url(proc, timeout_s)
    except Exception:  # noqa: BLE001 - any start failure: stop the process, say why
        stop_sim(sim, sig=signal.SIGKILL)
        raise RuntimeError(f"simulator did not start: {' '.join(argv)}\n{sim.stderr()}") from None
    return sim


def _wait_for_url(proc: subprocess.Popen, timeout_s: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"simulator exited with {proc.wait()}")
            if line.startswith("listening on "):
                return line.split()[-1].strip()
    raise TimeoutError(f"no 'listening on' line within {timeout_s} s")


def stop_sim(sim: SimProc, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
    """Signal the simulator and wait; returns its exit code (kills it if it hangs)."""
    if sim.proc.poll() is None:
        sim.proc.send_signal(sig)
        try:
            sim.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            sim.proc.kill()
            sim.proc.wait()
    if sim.proc.stdout is not None:
        sim.proc.stdout.close()
    code = sim.proc.returncode
    sim.stderr_path.unlink(missing_ok=True)
    return code


def fill_max_tokens(req: ScriptRequest, rng: random.Random) -> ScriptReply:
    """Sim script: text of exactly ``max_tokens`` tokens (like vLLM with ``ignore_eos``)."""
    return ScriptReply(content=lorem(rng, req.max_tokens))
