"""The driver's exit codes: what a pipeline reads to decide whether a run is usable.

One table, used by the driver and documented in the README (keep the two identical).
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0  # finished; failed tasks at most run.max_failure_rate of all
    INTERNAL = 1  # a bug in slurmgen (a traceback is printed); report it
    REFUSED = 2  # config, command line or dataset refused before anything started
    STARTUP = 3  # a process did not come up (registry, LLM server, tool pool, peer)
    EARLY_STOP = 4  # stopped early: too many tasks failed (run.max_failure_rate)
    FAILURE_RATE = 5  # finished, but more than run.max_failure_rate of the tasks failed
    CRASHED = 6  # a process kept crashing (run.max_restarts) or a job could not be resubmitted
    STALLED = 7  # no progress for run.stall_s while tasks remained (state/stall.json says why)
    METRICS_FAILED = 8  # finished, every record written, but the workflow's metrics() raised (its bug)
    INTERRUPTED = 130  # SIGINT (Ctrl-C): processes stopped, resume with the same run.dir
    TERMINATED = 143  # SIGTERM: tasks drained, processes stopped, resume with the same run.dir
