"""Multirun (``-m``): every job of a sweep gets its own run directory."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def job_run_dir(run_dir: str) -> str:
    """``run.dir`` for this Hydra job.

    A single run keeps it. In a multirun sweep it becomes ``<run.dir>/<job number>``
    when the user gave ``run.dir`` (so re-running the same sweep resumes every job), and
    otherwise the job's sweep directory ``<hydra.sweep.dir>/<hydra.sweep.subdir>``.
    """
    if not HydraConfig.initialized():
        return run_dir
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return run_dir
    given = any(o.split("=", 1)[0].lstrip("+~") == "run.dir" for o in hc.overrides.task)
    if given:
        return str(Path(run_dir) / str(hc.job.num))
    return str(hc.runtime.output_dir)
