"""What a finished run measured, per LLM pool, for the planner.

From ``RUN/summary.json`` (tokens and requests per pool), ``RUN/config.yaml`` (replicas,
peers, tool-pool members, GPUs per replica) and the records' own times: the run's
*active* seconds (first task issued to last record written) are kept apart from its
start-up, so that a short calibration run does not understate the rate.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from omegaconf import OmegaConf

from slurmgen.errors import ConfigError
from slurmgen.rundir import RunDir


class PoolCal(msgspec.Struct, kw_only=True):
    pool: str  # "default" = llm, else llms.<pool>
    replicas: int
    gpus_per_replica: int  # the pool's slurm.gpus_per_node (0 for the simulator / hosted)
    tokens_per_record: float
    requests_per_record: float
    tokens_per_s_per_replica: float  # what each replica delivered while the run was active


class Calibration(msgspec.Struct, kw_only=True):
    run: str
    workflow: str
    records: int
    wall_s: float
    active_s: float  # first task issued .. last record written
    startup_s: float  # wall_s - active_s: servers starting, registry, draining (a fixed cost)
    records_per_s: float
    peers: int
    toolpool_size: int
    pools: list[PoolCal]


class _Times(msgspec.Struct):
    created_at: float = 0.0
    finished_at: float = 0.0


def _active_s(run: RunDir) -> float:
    first, last = float("inf"), 0.0
    decoder = msgspec.json.Decoder(_Times)
    for path in sorted(run.results.glob("shard-*.jsonl")):
        with path.open("rb") as f:
            for line in f:
                t = decoder.decode(line)
                if t.created_at:
                    first = min(first, t.created_at)
                last = max(last, t.finished_at)
    return max(1e-3, last - first) if last else 0.0


def _pool_conf(config: dict, pool: str) -> dict:
    return config["llm"] if pool == "default" else config.get("llms", {}).get(pool, {})


def load(run_dir: Path) -> Calibration:
    run = RunDir(Path(run_dir))
    if not run.summary.exists() or not run.config.exists():
        raise ConfigError(f"{run_dir} is not a finished run (no summary.json or config.yaml): calibrate with a "
                          "short run of your workflow first, e.g. python -m slurmgen workflow=W dataset.limit=200")
    summary = msgspec.json.decode(run.summary.read_bytes())
    config = OmegaConf.to_container(OmegaConf.load(run.config))
    if not isinstance(config, dict):
        raise ConfigError(f"{run.config} is not a run's resolved config (a mapping)")
    records = int(summary["tasks_total"])
    active = _active_s(run) or float(summary["wall_s"])
    if records == 0:
        raise ConfigError(f"{run_dir} wrote no records: nothing to calibrate from")
    pools = []
    for pool, u in sorted(summary.get("usage_by_pool", {}).items()):
        conf = _pool_conf(config, pool)
        replicas = int(conf.get("replicas", 1)) or 1
        tokens = float(u["prompt_tokens"]) + float(u["completion_tokens"])
        pools.append(PoolCal(pool=pool, replicas=replicas,
                             gpus_per_replica=int(conf.get("slurm", {}).get("gpus_per_node", 0) or 0),
                             tokens_per_record=tokens / records, requests_per_record=float(u["requests"]) / records,
                             tokens_per_s_per_replica=tokens / active / replicas))
    size = int(config.get("toolpool", {}).get("size", -1))
    if size < 0:  # the workflow's default: 2 if it names a session factory
        size = 2 if config["workflow"].get("toolpool_factory") or config["toolpool"].get("factory") else 0
    return Calibration(run=str(run.root), workflow=str(config["workflow"]["name"]), records=records,
                       wall_s=float(summary["wall_s"]), active_s=active,
                       startup_s=max(0.0, float(summary["wall_s"]) - active), records_per_s=records / active,
                       peers=int(config["run"]["peers"]), toolpool_size=size, pools=pools)
