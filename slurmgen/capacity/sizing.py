"""From a calibration to a plan: replicas per pool, peers, tool-pool members, GPUs, finish.

Each pool's replicas are sized so that its token demand (tokens per record x records /
the time available) fits the tokens/s one replica delivered in the calibration; peers and
tool-pool members keep the calibration's ratio to replicas and to records/s. The rates
are what the calibration *achieved*: a calibration whose replicas were not saturated
makes the plan ask for more than it needs (it never asks for less than it measured).
"""

from __future__ import annotations

import math

import msgspec

from slurmgen.capacity.calibration import Calibration, PoolCal
from slurmgen.errors import ConfigError


class PoolPlan(msgspec.Struct, kw_only=True):
    pool: str
    replicas: int
    gpus: int  # replicas x GPUs per replica
    tokens_per_s: float  # the pool's predicted throughput
    override: str  # the Hydra override that sets its replicas


class Plan(msgspec.Struct, kw_only=True):
    workflow: str
    records: int
    hours: float
    pools: list[PoolPlan]
    peers: int
    toolpool_size: int
    gpus: int
    gpu_nodes: int  # with gpus_per_node GPUs each (0 when no pool uses GPUs)
    gpus_per_node: int
    records_per_s: float  # predicted, the slowest pool's
    expected_finish_h: float  # start-up (as measured) + records / records_per_s
    gpu_hours: float
    over_budget: bool
    overrides: list[str]
    calibration: Calibration


def _pool(cal: PoolCal, records: int, seconds: float) -> PoolPlan:
    need = cal.tokens_per_record * records / seconds  # tokens/s the pool must deliver
    replicas = max(1, math.ceil(need / cal.tokens_per_s_per_replica)) if cal.tokens_per_s_per_replica else 1
    key = "llm.replicas" if cal.pool == "default" else f"llms.{cal.pool}.replicas"
    return PoolPlan(pool=cal.pool, replicas=replicas, gpus=replicas * cal.gpus_per_replica,
                    tokens_per_s=replicas * cal.tokens_per_s_per_replica, override=f"{key}={replicas}")


def size(cal: Calibration, records: int, hours: float, gpus_per_node: int = 8, gpu_budget: float = 0.0) -> Plan:
    seconds = hours * 3600 - cal.startup_s
    if records <= 0 or seconds <= 0:
        raise ConfigError(f"--hours {hours} leaves no time after the start-up the calibration measured "
                          f"({cal.startup_s:.0f} s); give more hours")
    pools = [_pool(p, records, seconds) for p in cal.pools]
    by_pool = {p.pool: p for p in pools}
    rate = min((by_pool[c.pool].tokens_per_s / c.tokens_per_record for c in cal.pools if c.tokens_per_record),
               default=cal.records_per_s)
    replicas, calib_replicas = sum(p.replicas for p in pools), sum(c.replicas for c in cal.pools) or 1
    peers = max(1, math.ceil(cal.peers * replicas / calib_replicas))
    toolpool = math.ceil(cal.toolpool_size * rate / cal.records_per_s) if cal.toolpool_size else 0
    finish_h = (cal.startup_s + records / rate) / 3600
    gpus = sum(p.gpus for p in pools)
    overrides = [f"workflow={cal.workflow}", f"dataset.limit={records}", *(p.override for p in pools),
                 f"run.peers={peers}", *([f"toolpool.size={toolpool}"] if toolpool else [])]
    return Plan(workflow=cal.workflow, records=records, hours=hours, pools=pools, peers=peers,
                toolpool_size=toolpool, gpus=gpus, gpu_nodes=math.ceil(gpus / gpus_per_node) if gpus else 0,
                gpus_per_node=gpus_per_node,
                records_per_s=rate, expected_finish_h=finish_h, gpu_hours=gpus * finish_h,
                over_budget=bool(gpu_budget) and gpus * finish_h > gpu_budget, overrides=overrides, calibration=cal)
