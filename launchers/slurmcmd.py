"""The one place slurmgen runs SLURM commands (scancel, sacct, squeue) itself.

submitit runs sbatch and its own sacct polling; everything else goes through ``call``,
whose error carries the command, exit code, stdout and stderr.
"""

from __future__ import annotations

import subprocess

from slurmgen.errors import SlurmgenError

TIMEOUT_S = 60.0


class SubmissionError(SlurmgenError):
    """A SLURM command failed; the message has the command, exit code and its output."""

    def __init__(self, argv: list[str], code: int | None, stdout: str, stderr: str) -> None:
        self.argv, self.code, self.stdout, self.stderr = argv, code, stdout, stderr
        super().__init__(f"`{' '.join(argv)}` failed (exit code {code}):\nstdout: {stdout.strip()}\n"
                         f"stderr: {stderr.strip()}\nIs SLURM reachable from here (`scontrol ping`)?")


def call(argv: list[str], timeout_s: float = TIMEOUT_S) -> str:
    """Run a SLURM command and return its stdout; raise SubmissionError when it fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise SubmissionError(argv, None, "", f"{exc}: SLURM's commands are not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise SubmissionError(argv, None, str(exc.stdout or ""), f"no answer in {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        raise SubmissionError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def scancel(job_ids: list[str]) -> None:
    if job_ids:
        call(["scancel", *job_ids])
