"""Start a plan's processes on this machine and stop every one of them, whatever happens."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import RunCrashed
from slurmgen.proc.diskspace import check_room
from slurmgen.proc.lifeline import die_with_parent
from slurmgen.run.plan import ProcessSpec
from slurmgen.run.watchdog import last_errors
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


class Supervisor:
    """Restarts a crashed process (bounded); a peer resumes from its shard's records."""

    def __init__(self, launcher: LocalLauncher, max_restarts: int) -> None:
        self.launcher = launcher
        self.max_restarts = max_restarts
        self.restarts: dict[str, int] = {}

    def check(self) -> None:
        for r in self.launcher.exited():
            check_room(self.launcher.run.root)  # a full disk: stop now, restarts would fail the same way
            name, code = r.spec.name, r.proc.returncode
            where = f"see {self.launcher.run.log(name + '.out')} and {self.launcher.run.logs}/"
            if self.restarts.get(name, 0) >= self.max_restarts:
                last = last_errors(self.launcher.run.log(name), 1) or last_errors(self.launcher.run.log(name + ".out"), 1)
                raise RunCrashed(f"{name} exited with code {code} and was restarted {self.max_restarts} times "
                                 f"already (run.max_restarts); {where}" + (f"; its last error: {last[0]}" if last else ""))
            self.restarts[name] = self.restarts.get(name, 0) + 1
            log.warning("%s exited with code %s: restarting it (%d/%d); %s", name, code,
                        self.restarts[name], self.max_restarts, where)
            self.launcher.restart(r)


class LocalRun:
    """``cluster.kind=local`` (entry point ``slurmgen.launchers``): the plan's processes on this
    machine; check() restarts a crashed one (bounded by run.max_restarts)."""

    def __init__(self, conf: SlurmgenConf, run: RunDir) -> None:
        self.processes = LocalLauncher(run)
        self.supervisor = Supervisor(self.processes, conf.run.max_restarts)

    def start(self, spec: ProcessSpec) -> Running:
        return self.processes.start(spec)

    def start_all(self, specs: list[ProcessSpec]) -> list[Running]:
        return self.processes.start_all(specs)

    def check(self) -> None:
        self.supervisor.check()

    def stop(self, component: str | None = None, grace_s: float = 10.0) -> None:
        self.processes.stop(component, grace_s)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
