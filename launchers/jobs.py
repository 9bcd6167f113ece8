"""What runs inside a SLURM job: one process of the plan, supervised by submitit.

submitit pickles ``SpecJob`` and its ``ProcessSpec`` to submit them (that is SLURM job
submission, not slurmgen's wire). On preemption or an approaching time limit SLURM
sends USR2: submitit calls ``checkpoint``, which stops the process gracefully (an agent
peer drains and keeps its records) and returns the same call, and requeues the job;
on restart the peer resumes from its shard's records.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import submitit

from slurmgen.errors import SlurmgenError
from slurmgen.launchers.plan import ProcessSpec

log = logging.getLogger("slurmgen.job")


class ProcessFailed(SlurmgenError):
    """The job's process exited with a non-zero code (the job is then FAILED)."""


class SpecJob(submitit.helpers.Checkpointable):
    """Run one ProcessSpec (or, in a heterogeneous job, the one for this task's rank)."""

    def __init__(self, log_dir: str, grace_s: float = 30.0) -> None:
        self.log_dir = log_dir
        self.grace_s = grace_s
        self._child: subprocess.Popen[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"log_dir": self.log_dir, "grace_s": self.grace_s, "_child": None}

    def __call__(self, spec: ProcessSpec | list[ProcessSpec]) -> int:
        if isinstance(spec, list):
            spec = spec[submitit.JobEnvironment().global_rank]
        out_path = Path(self.log_dir) / f"{spec.name}.out"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "ab") as out:
            self._child = subprocess.Popen(spec.argv, stdout=out, stderr=subprocess.STDOUT,
                                           env={**os.environ, **spec.env})
        print(f"slurmgen: {spec.name} pid={self._child.pid} on {os.uname().nodename}; output: {out_path}",
              flush=True)
        code = self._child.wait()
        if code != 0:
            raise ProcessFailed(f"{spec.name} exited with code {code}; see {out_path}")
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Preempted or timing out: stop the process gracefully, then requeue the same call."""
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return submitit.helpers.DelayedSubmission(SpecJob(self.log_dir, self.grace_s), *args, **kwargs)
