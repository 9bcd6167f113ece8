"""Run a plan on SLURM through submitit: one job array per component (LLM servers,
tool pools, agent peers: one array task per shard), or with ``cluster.hetjob`` one
heterogeneous job per (LLM replica, peer) pair.

The registry runs beside the driver (a local child bound to this node's address): it
is small, off the data path, and must live exactly as long as the driver anyway.
``check`` polls job states (one sacct call through submitit's watcher every
``cluster.poll_s``) and resubmits, alone, a job that ended before its work was done.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import submitit
from submitit.slurm.slurm import SlurmJob

from slurmgen.config import pools
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError, RunCrashed, StartupError
from slurmgen.launchers import fit, slurmcmd
from slurmgen.launchers.hetjob import check_folder, hetjob_params
from slurmgen.launchers.jobs import SpecJob
from slurmgen.launchers.local import LocalLauncher, Running
from slurmgen.launchers.orphan import Beat
from slurmgen.launchers.resources import submitit_params
from slurmgen.run.plan import ProcessSpec
from slurmgen.rundir import RunDir

log = logging.getLogger("slurmgen.launcher.slurm")

ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE", "PREEMPTED", "REVOKED"}
PREEMPT_GRACE_S = 60.0  # a PREEMPTED job that is not requeued within this is resubmitted
STOP_POLL_S = 0.5
RECANCEL_S = 5.0


class JobFailed(RunCrashed):
    """A SLURM job of the run failed for good; the message names job id, log and config field."""


class JobNotReady(StartupError):
    """A service's SLURM job never became ready (its health check); the message names job, log and field."""


@dataclass
class Tracked:
    specs: list[ProcessSpec]  # one, or the components of a heterogeneous job
    job: Any  # submitit.Job
    resubmits: int = 0
    over: bool = False  # ended after its work was done, or cancelled by stop()
    preempted_at: float | None = None

    @property
    def key(self) -> str:
        return "+".join(s.name for s in self.specs)


def job_state(job: Any) -> str:
    """The job's sacct state from the watcher's cache, first word ("CANCELLED by 0" -> CANCELLED)."""
    state: str = job.watcher.get_state(job.job_id, mode="cache")
    return state.split()[0] if state else "UNKNOWN"


def pack_units(conf: SlurmgenConf, services: list[ProcessSpec], peers: list[ProcessSpec]) -> list[list[ProcessSpec]]:
    """cluster.hetjob: heterogeneous job i = [replica i of each LLM pool (if it has one), peer-i]."""
    by_pool: dict[str, list[ProcessSpec]] = {}
    for spec in services:
        by_pool.setdefault(spec.pool, []).append(spec)
    for pool, replicas in by_pool.items():
        if len(replicas) > len(peers):
            raise ConfigError(f"cluster.hetjob packs replica i of each LLM pool with agent peer i: "
                              f"{pools.key(pool or pools.DEFAULT)}.replicas={len(replicas)} must be <= "
                              f"run.peers={len(peers)}")
    return [[*(r[i] for r in by_pool.values() if i < len(r)), peer] for i, peer in enumerate(peers)]


class SlurmLauncher:
    def __init__(self, conf: SlurmgenConf, run: RunDir) -> None:
        self.conf, self.cluster, self.run = conf, conf.cluster, run
        self.local = LocalLauncher(run)
        self.tracked: list[Tracked] = []
        self.registry_restarts = 0
        self._last_poll = 0.0
        self.beat = Beat(run.driver_alive)
        self.fitted: set[str] = set()  # components checked against the partition's nodes

    # -- starting ---------------------------------------------------------------------
    def start(self, spec: ProcessSpec) -> Running | None:
        if spec.component == "registry":
            return self.local.start(spec)
        self.start_all([spec])
        return None

    def start_all(self, specs: list[ProcessSpec]) -> None:
        """Submit every non-registry process: one array per component, or heterogeneous jobs."""
        self.beat.touch()
        self._fit({s.job_component for s in specs})
        if self.cluster.hetjob:  # LLM replica i + agent peer i per job; tool pools keep their own array
            llms = [s for s in specs if s.component == "llm"]
            peers = [s for s in specs if s.component == "peer"]
            for unit in pack_units(self.conf, llms, peers):
                self.tracked.append(Tracked(unit, self._submit(unit)))
            specs = [s for s in specs if s.component not in ("llm", "peer")]
        groups: dict[str, list[ProcessSpec]] = {}
        for spec in specs:
            groups.setdefault(spec.job_component, []).append(spec)
        for component, group in groups.items():
            self._submit_array(component, group)
        self._announce()

    def _fit(self, components: set[str]) -> None:
        """Before a component's first sbatch: refuse resources no node of its partition has and
        size its ``auto`` ones (launchers/fit.py); its resubmissions reuse the sizes."""
        todo = sorted(components - self.fitted)
        if todo:
            self.conf = fit.fit_conf(self.conf, todo, fit.read_nodes())
            self.cluster = self.conf.cluster
            self.fitted.update(todo)

    def _executor(self, params: dict[str, Any], folder: Path) -> submitit.SlurmExecutor:
        try:
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=self.cluster.max_resubmits)
        except RuntimeError as exc:
            raise ConfigError(f"cluster=slurm but {exc} (srun not found); run on a SLURM login node "
                              "or use cluster=local") from exc
        executor.update_parameters(**params)
        return executor

    def _submit_array(self, component: str, specs: list[ProcessSpec]) -> None:
        executor = self._executor(submitit_params(self.conf, component), self.run.root / "slurm" / "%j")
        jobs = _sbatch(lambda: executor.map_array(self._job(), specs), component)
        self.tracked += [Tracked([spec], job) for spec, job in zip(specs, jobs)]

    def _submit(self, specs: list[ProcessSpec]) -> Any:
        """Submit one process alone (a resubmission), or one heterogeneous job."""
        if len(specs) == 1 and not self.cluster.hetjob:
            folder = self.run.root / "slurm" / "%j"
            executor = self._executor(submitit_params(self.conf, specs[0].job_component), folder)
            return _sbatch(lambda: executor.submit(self._job(), specs[0]), specs[0].name)
        folder = self.run.root / "slurm" / "het"
        check_folder(folder)
        executor = self._executor(hetjob_params(self.conf, [s.job_component for s in specs]), folder)
        arg = specs if len(specs) > 1 else specs[0]
        return _sbatch(lambda: executor.submit(self._job(), arg), "+".join(s.name for s in specs))

    def _job(self) -> SpecJob:
        return SpecJob(str(self.run.logs), heartbeat=str(self.run.driver_alive),
                       orphan_s=self.cluster.orphan_timeout_s)

    def _announce(self) -> None:
        ids = sorted({t.job.job_id.split("_")[0] for t in self.tracked})
        print(f"slurmgen: submitted SLURM jobs {', '.join(ids)} ({len(self.tracked)} tasks); follow with "
              f"`squeue -j {','.join(ids)}` or `sacct -j {','.join(ids)}`; job logs in {self.run.root / 'slurm'}",
              file=sys.stderr, flush=True)

    # -- watching ---------------------------------------------------------------------
    def check(self) -> None:
        """Raise JobFailed when the run cannot go on; resubmit jobs that ended too early."""
        self.beat.touch()
        self._check_registry()
        now = time.monotonic()
        if now - self._last_poll < self.cluster.poll_s:
            return
        self._last_poll = now
        SlurmJob.watcher.update()  # one sacct call for every job of the run
        for t in self.tracked:
            if not t.over:
                self._inspect(t, now)

    def _check_registry(self) -> None:
        for r in self.local.exited():
            where = self.run.log("registry.out")
            if self.registry_restarts >= self.cluster.max_resubmits:
                raise JobFailed(f"the registry exited with code {r.proc.returncode} {self.registry_restarts + 1} "
                                f"times (cluster.max_resubmits); see {where}")
            self.registry_restarts += 1
            log.warning("the registry exited with code %s: restarting it; see %s", r.proc.returncode, where)
            self.local.running.remove(r)
            self.local.start(r.spec)

    def _inspect(self, t: Tracked, now: float) -> None:
        state = job_state(t.job)
        if state not in ENDED:
            t.preempted_at = None
            return
        if state == "PREEMPTED":
            t.preempted_at = t.preempted_at or now
            if now - t.preempted_at < PREEMPT_GRACE_S:
                return  # submitit's checkpoint usually requeues it
        if self._work_done(t):
            t.over = True
            return
        self._resubmit(t, state)

    def _work_done(self, t: Tracked) -> bool:
        peers = [s for s in t.specs if s.component == "peer"]
        return bool(peers) and all(self.run.shard_done(s.index).exists() for s in peers)

    def _resubmit(self, t: Tracked, state: str) -> None:
        job_log = Path(t.job.paths.stdout)
        for spec in t.specs:
            marker = self.run.not_ready(spec.name)
            if marker.exists():
                raise JobNotReady(f"{spec.name} (SLURM job {t.job.job_id}) did not become ready: {marker.read_text()}. "
                                f"Job log: {job_log}; server log: {self.run.log(spec.name)}. "
                                "Config: llm.ready_timeout_s (or the server's llm.extra_args / llm.slurm resources)")
        if t.resubmits >= self.cluster.max_resubmits:
            raise JobFailed(f"{t.key} (SLURM job {t.job.job_id}) ended {state} and was already resubmitted "
                            f"{t.resubmits} times (cluster.max_resubmits). Job log: {job_log}\n{_tail(job_log)}")
        old = t.job.job_id
        t.job = self._submit(t.specs)
        t.resubmits += 1
        t.preempted_at = None
        log.warning("%s: SLURM job %s ended %s; resubmitted as job %s (%d/%d)", t.key, old, state,
                    t.job.job_id, t.resubmits, self.cluster.max_resubmits)
        print(f"slurmgen: {t.key} (job {old}) ended {state}: resubmitted as job {t.job.job_id} "
              f"({t.resubmits}/{self.cluster.max_resubmits})", file=sys.stderr, flush=True)

    # -- stopping ---------------------------------------------------------------------
    def stop(self, component: str | None = None, grace_s: float = 10.0) -> None:
        """Cancel the jobs of one component (or all) and wait, bounded, until they end."""
        if component in (None, "registry"):
            self.local.stop("registry", grace_s)
        targets = [t for t in self.tracked if not t.over
                   and (component is None or any(s.component == component for s in t.specs))]
        for t in targets:
            t.over = True
        try:
            slurmcmd.scancel([t.job.job_id for t in targets])
        except slurmcmd.SubmissionError as exc:
            log.error("could not cancel the run's jobs: %s", exc)
            return
        self._wait_ended([t.job for t in targets])

    def _wait_ended(self, jobs: list[Any]) -> None:
        """Wait until the cancelled jobs ended; cancel again what is still alive (a job that
        was requeueing itself after a preemption signal when scancel came comes back)."""
        deadline = time.monotonic() + self.cluster.stop_timeout_s
        next_cancel = time.monotonic() + RECANCEL_S
        while jobs and time.monotonic() < deadline:
            SlurmJob.watcher.update()
            jobs = [j for j in jobs if job_state(j) not in ENDED]
            if jobs and time.monotonic() > next_cancel:
                slurmcmd.scancel([j.job_id for j in jobs])
                next_cancel = time.monotonic() + RECANCEL_S
            if jobs:
                time.sleep(STOP_POLL_S)
        if jobs:
            log.warning("jobs %s still not ended %.0f s after scancel", [j.job_id for j in jobs],
                        self.cluster.stop_timeout_s)


def _sbatch(submit: Callable[[], Any], what: str) -> Any:
    """Run a submitit submission; a refused sbatch becomes an error naming the cluster.* fields."""
    try:
        return submit()
    except submitit.core.utils.FailedJobError as exc:
        raise JobFailed(f"sbatch refused the {what} job(s): {exc}. Check cluster.partition / account / qos "
                        "and the component's resources (llm.slurm, llms.<pool>.slurm, cluster.peer, ...)") from exc


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path} yet)"
