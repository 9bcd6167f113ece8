"""What runs inside a SLURM job: one process of the plan, supervised by submitit.

submitit pickles ``SpecJob`` and its ``ProcessSpec`` to submit them (that is SLURM job
submission, not slurmgen's wire). On preemption or an approaching time limit SLURM
sends USR2: submitit calls ``checkpoint``, which stops the process gracefully (an agent
peer drains and keeps its records) and returns the same call, and requeues the job;
on restart the peer resumes from its shard's records. A job whose driver stopped
beating stops its process and ends (``slurmgen.launchers.orphan``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit

from slurmgen.errors import SlurmgenError
from slurmgen.launchers.orphan import Watch
from slurmgen.run.plan import ProcessSpec

log = logging.getLogger("slurmgen.job")

CHECK_S = 2.0  # how often the job looks at the driver's heartbeat


class ProcessFailed(SlurmgenError):
    """The job's process exited with a non-zero code (the job is then FAILED)."""


class SpecJob(submitit.helpers.Checkpointable):
    """Run one ProcessSpec (or, in a heterogeneous job, the one for this task's rank)."""

    def __init__(self, log_dir: str, grace_s: float = 30.0, heartbeat: str = "", orphan_s: float = 0.0) -> None:
        self.log_dir = log_dir
        self.grace_s = grace_s
        self.heartbeat, self.orphan_s = heartbeat, orphan_s  # the driver's lifeline ("" / 0: none)
        self._child: subprocess.Popen[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_child": None}

    def _again(self) -> SpecJob:
        return SpecJob(self.log_dir, self.grace_s, self.heartbeat, self.orphan_s)

    def __call__(self, spec: ProcessSpec | list[ProcessSpec]) -> int:
        if isinstance(spec, list):
            spec = spec[submitit.JobEnvironment().global_rank]
        out_path = Path(self.log_dir) / f"{spec.name}.out"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "ab") as out:
            self._child = subprocess.Popen(spec.argv, stdout=out, stderr=subprocess.STDOUT,
                                           env={**os.environ, **spec.env}, preexec_fn=_ignore_usr2)
        print(f"slurmgen: {spec.name} pid={self._child.pid} on {os.uname().nodename}; output: {out_path}",
              flush=True)
        code = self._wait(spec.name)
        if code != 0:
            raise ProcessFailed(f"{spec.name} exited with code {code}; see {out_path}")
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Preempted or timing out: stop the process gracefully, then requeue the same call."""
        if self._child is not None:
            _stop(self._child.pid, self.grace_s)
        return submitit.helpers.DelayedSubmission(self._again(), *args, **kwargs)

    def _wait(self, name: str) -> int:
        """The process's exit code; 0 after stopping it when the driver is gone."""
        assert self._child is not None
        watch = Watch(Path(self.heartbeat), self.orphan_s) if self.heartbeat else None
        while True:
            try:
                return self._child.wait(timeout=CHECK_S)
            except subprocess.TimeoutExpired:
                pass
            if watch is not None and watch.orphaned():
                print(f"slurmgen: {name}: the driver has not beaten for {watch.silent_s():.0f} s "
                      f"(cluster.orphan_timeout_s={self.orphan_s:g}; {self.heartbeat}): stopping. Run the "
                      "same command again to resume the run.", flush=True)
                _stop(self._child.pid, self.grace_s)
                return 0


def _stop(pid: int, grace_s: float) -> None:
    """SIGTERM, wait up to grace_s, then SIGKILL. Uses waitpid, not Popen.wait: this runs in
    a signal handler that interrupted Popen.wait, which holds the Popen's wait lock."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        return  # already gone and reaped


def _ignore_usr2() -> None:
    """SLURM signals every process of the step; USR2 is for submitit (checkpoint), which
    then stops the process with SIGTERM so that it drains instead of dying at once."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
