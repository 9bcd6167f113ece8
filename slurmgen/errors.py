"""slurmgen's exceptions. Each message says what to do; each class carries the driver's
exit code for it (slurmgen.exitcodes)."""

from slurmgen.exitcodes import Exit
from slurmgen.protocol import Failure


class SlurmgenError(Exception):
    """Base class."""

    exit_code = Exit.REFUSED


class ConfigError(SlurmgenError):
    """The configuration or the command line is wrong; nothing was started."""


class ResourceLimitError(SlurmgenError):
    """A limit of the machine (e.g. open files) is too low for the run; nothing was started. Not retryable."""


class DatasetError(SlurmgenError):
    """The dataset cannot be read as a whole (missing, a directory, unreadable)."""


class ProtocolError(SlurmgenError):
    """A peer speaks another protocol version, or a frame is invalid."""


class StartupError(SlurmgenError):
    """A process did not become ready in time."""

    exit_code = Exit.STARTUP


class RunCrashed(SlurmgenError):
    """A process of the run kept dying (run.max_restarts) or its job could not be resubmitted."""

    exit_code = Exit.CRASHED


class EarlyStop(SlurmgenError):
    """Too many tasks failed; the run stopped before its end (run.max_failure_rate)."""

    exit_code = Exit.EARLY_STOP


class LLMError(SlurmgenError):
    """An LLM request failed after its retries (retryable at the task level)."""

    def __init__(self, message: str, *, kind: Failure = Failure.LLM_ERROR) -> None:
        super().__init__(message)
        # LLM_ERROR | CONTEXT_TOO_LONG | BAD_REQUEST (a 4xx no retry fixes) | TIMEOUT |
        # RATE_LIMITED (429 on every attempt) | SERVER_DIED (the server dropped it) | ENGINE_DIED
        self.kind = Failure(kind)


class RowError(SlurmgenError):
    """One input row is bad; it becomes a failed record, the run goes on."""


class ToolPoolError(SlurmgenError):
    """A tool-pool session could not be used (its member died, timed out, refused it).

    ``kind`` is the failure class written in the record's reason: ``tool_error`` (retried
    from the row while ``run.max_attempts`` allow, with ``tool_error`` in ``run.retry_on``)
    or ``tool_lost`` (recorded failed at once; ``toolpool.on_lost=fail``).
    """

    def __init__(self, message: str, *, kind: Failure = Failure.TOOL_ERROR) -> None:
        super().__init__(message)
        self.kind = Failure(kind)


class RunStalled(SlurmgenError):
    """No task moved for run.stall_s (then run.stall_stop_s) while tasks remained; RUN/state/stall.json says
    what the run was waiting for."""

    exit_code = Exit.STALLED


class DiskFull(SlurmgenError):
    """The run directory's filesystem is full: the process stops (nothing is torn), a rerun resumes."""

    exit_code = Exit.CRASHED
