"""Start a plan's processes on this machine and stop every one of them, whatever happens."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from slurmgen.run.plan import ProcessSpec
from slurmgen.proc.lifeline import die_with_parent
from slurmgen.rundir import RunDir

log = logging.getLogger("slurmgen.launcher.local")


@dataclass
class Running:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes]


class LocalLauncher:
    """Each process gets its own process group, so stopping it stops its children too."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.running: list[Running] = []

    def start(self, spec: ProcessSpec) -> Running:
        out = open(self.run.log(f"{spec.name}.out"), "ab")
        env = {**os.environ, **spec.env}
        proc = subprocess.Popen(spec.argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=die_with_parent)
        out.close()
        log.info("started %s pid=%d: %s", spec.name, proc.pid, " ".join(spec.argv))
        item = Running(spec, proc)
        self.running.append(item)
        return item

    def restart(self, item: Running) -> Running:
        """Start a crashed process again: the same command, or its next placement (``ProcessSpec.moved``)."""
        self.running.remove(item)
        return self.start(item.spec.moved())

    def start_all(self, specs: list[ProcessSpec]) -> list[Running]:
        return [self.start(spec) for spec in specs]

    def exited(self) -> list[Running]:
        return [r for r in self.running if r.proc.poll() is not None]

    def stop(self, component: str | None = None, grace_s: float = 10.0) -> None:
        """SIGTERM the group of each (matching) process, then SIGKILL what is left."""
        targets = [r for r in self.running if component is None or r.spec.component == component]
        for r in targets:
            _signal_group(r.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for r in targets:
            try:
                r.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: killing it", r.spec.name, grace_s)
            _signal_group(r.proc, signal.SIGKILL)  # also reaps stray children of the group
            r.proc.wait()
        self.running = [r for r in self.running if r not in targets]


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
