"""What a finished run measured, for the planner: its phases, its steady rate, what bounded it.

A run's wall time is modelled as fixed costs plus records / steady rate:

* ``launch_s``: the driver process starting (Python, Hydra) until it starts the run
  (``summary.json``'s ``launched_at`` .. ``measured_from``);
* ``startup_s``: servers and peers starting (SLURM jobs submitted and scheduled, servers
  ready, registry) until the first task is issued;
* ``ramp_s``: the active span (first task issued .. last record written) minus what the
  steady rate explains: the first tasks' latency before records stream, and the stragglers
  after the last task was issued;
* ``stop_s``: last record .. every process stopped and summary.json written;
* ``report_s``: report.html (``summary.json``'s ``report_s``).

The steady rate is the slope of the records' finish times while tasks were still being
issued (a least-squares line through the k-th finish time): a run whose tasks were all in
flight at once measured a latency, not a rate, and is refused as a calibration (the cause
of the first version's over-prediction). ``rates.py`` finds the rate and the bound.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from omegaconf import OmegaConf

from slurmgen.capacity.rates import Steady, bound, steady
from slurmgen.errors import ConfigError
from slurmgen.run.summary import PoolUsage
from slurmgen.rundir import RunDir


class PoolCal(msgspec.Struct, kw_only=True):
    pool: str  # "default" = llm, else llms.<pool>
    replicas: int
    gpus_per_replica: int  # the pool's slurm.gpus_per_node (0 for the simulator / hosted)
    tokens_per_record: float
    requests_per_record: float
    tokens_per_s_per_replica: float  # what each replica delivered at the steady rate


class Phases(msgspec.Struct, kw_only=True):
    """Seconds of the fixed parts of the calibration's wall time (see the module's docstring)."""

    launch_s: float
    startup_s: float
    ramp_s: float
    stop_s: float
    report_s: float

    @property
    def fixed_s(self) -> float:
        return self.launch_s + self.startup_s + self.ramp_s + self.stop_s + self.report_s


class Calibration(msgspec.Struct, kw_only=True):
    run: str
    workflow: str
    records: int
    wall_s: float  # launch .. report written (what the user waited)
    phases: Phases
    records_per_s: float  # the steady rate
    steady: Steady
    bound: str  # what bounded the steady rate: in_flight | toolpool | llm (rates.BOUNDS)
    peers: int
    max_in_flight: int  # run.max_in_flight (over the run)
    toolpool_size: int
    dataset_rows: int  # rows of the calibration's dataset (no limit): more records take run.trials
    pools: list[PoolCal]


class _Summary(msgspec.Struct, kw_only=True):
    tasks_total: int
    wall_s: float
    measured_from: float = 0.0
    launched_at: float = 0.0
    report_s: float = 0.0
    usage_by_pool: dict[str, PoolUsage] = {}


def _pool_conf(config: dict, pool: str) -> dict:
    return config["llm"] if pool == "default" else config.get("llms", {}).get(pool, {})


def _read(run_dir: Path) -> tuple[RunDir, _Summary, dict]:
    run = RunDir(Path(run_dir))
    if not run.summary.exists() or not run.config.exists():
        raise ConfigError(f"{run_dir} is not a finished run (no summary.json or config.yaml): calibrate with a "
                          "short run of your workflow first, e.g. python -m slurmgen workflow=W dataset.limit=1000")
    summary = msgspec.json.decode(run.summary.read_bytes(), type=_Summary)
    config = OmegaConf.to_container(OmegaConf.load(run.config))
    if not isinstance(config, dict):
        raise ConfigError(f"{run.config} is not a run's resolved config (a mapping)")
    if summary.tasks_total == 0:
        raise ConfigError(f"{run_dir} wrote no records: nothing to calibrate from")
    return run, summary, config


def load(run_dir: Path) -> Calibration:
    run, summary, config = _read(run_dir)
    records = summary.tasks_total
    peers, in_flight = int(config["run"]["peers"]), int(config["run"].get("max_in_flight", 256))
    st = steady(run.results, cap=in_flight, since=summary.measured_from)
    end = summary.measured_from + summary.wall_s
    phases = Phases(launch_s=max(0.0, summary.measured_from - summary.launched_at) if summary.launched_at else 0.0,
                    startup_s=max(0.0, st.first_issued - summary.measured_from),
                    ramp_s=(st.last_written - st.first_issued) - st.records / st.rate,
                    stop_s=max(0.0, end - st.last_written), report_s=summary.report_s)
    pools = [_pool(config, pool, u, records, st.rate) for pool, u in sorted(summary.usage_by_pool.items())]
    size = int(config.get("toolpool", {}).get("size", -1))
    if size < 0:  # the workflow's default: 2 if it names a session factory
        size = 2 if config["workflow"].get("toolpool_factory") or config["toolpool"].get("factory") else 0
    return Calibration(run=str(run.root), workflow=str(config["workflow"]["name"]), records=records,
                       wall_s=round(summary.wall_s + phases.launch_s + phases.report_s, 3), phases=phases,
                       records_per_s=st.rate, steady=st, bound=bound(st, run.state), peers=peers,
                       max_in_flight=in_flight, toolpool_size=size, dataset_rows=_rows(config), pools=pools)


def _pool(config: dict, pool: str, usage: PoolUsage, records: int, rate: float) -> PoolCal:
    conf = _pool_conf(config, pool)
    replicas = int(conf.get("replicas", 1)) or 1
    tokens = (usage.prompt_tokens + usage.completion_tokens) / records
    return PoolCal(pool=pool, replicas=replicas,
                   gpus_per_replica=int(conf.get("slurm", {}).get("gpus_per_node", 0) or 0),
                   tokens_per_record=tokens, requests_per_record=usage.requests / records,
                   tokens_per_s_per_replica=tokens * rate / replicas)


def _rows(config: dict) -> int:
    """Rows the calibration's dataset has (0 when it cannot be read here)."""
    from slurmgen.input.dataset import count_rows

    path = str(config.get("dataset", {}).get("path", ""))
    try:
        return count_rows(Path(path), 0) if path else 0
    except (OSError, ValueError, ConfigError):
        return 0
