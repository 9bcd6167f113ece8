"""From a calibration to a plan: replicas per pool, peers, tool-pool members, GPUs, finish.

The records must be written in the time left after the calibration's fixed costs (launch,
start-up, ramp, stop, report: ``Phases``). Every resource is scaled by the same factor,
needed rate / calibrated steady rate: each pool's replicas (at least 1), the peers and the
tool-pool members and the in-flight cap (``run.max_in_flight``; never fewer than the
calibration had: they are cheap). The predicted rate is the calibrated one times the smallest
ratio of a resource to its calibration (the rate is assumed to grow with the resources
only as they all grow), and that resource is named as the bound (the calibration's own
bound when they all grow alike).
"""

from __future__ import annotations

import math

import msgspec

from slurmgen.capacity.calibration import Calibration, PoolCal
from slurmgen.capacity.rates import BOUNDS
from slurmgen.errors import ConfigError


class PoolPlan(msgspec.Struct, kw_only=True):
    pool: str
    replicas: int
    gpus: int  # replicas x GPUs per replica
    tokens_per_s: float  # the pool's predicted throughput
    override: str  # the Hydra override that sets its replicas


class Plan(msgspec.Struct, kw_only=True):
    workflow: str
    records: int  # asked
    records_planned: int  # dataset.limit x run.trials (>= records)
    hours: float
    pools: list[PoolPlan]
    peers: int
    max_in_flight: int
    toolpool_size: int
    gpus: int
    gpu_nodes: int  # with gpus_per_node GPUs each (0 when no pool uses GPUs)
    gpus_per_node: int
    records_per_s: float  # predicted steady rate
    bound: str  # in_flight | toolpool | llm (rates.BOUNDS says what each means)
    bound_text: str
    fixed_s: float  # launch + start-up + ramp + stop + report, as calibrated
    steady_s: float  # records_planned / records_per_s
    expected_wall_s: float  # fixed_s + steady_s
    expected_finish_h: float
    gpu_hours: float
    over_budget: bool
    overrides: list[str]
    calibration: Calibration


def _pool(cal: PoolCal, factor: float, rate: float) -> PoolPlan:
    replicas = max(1, math.ceil(cal.replicas * factor - 1e-9))
    key = "llm.replicas" if cal.pool == "default" else f"llms.{cal.pool}.replicas"
    return PoolPlan(pool=cal.pool, replicas=replicas, gpus=replicas * cal.gpus_per_replica,
                    tokens_per_s=round(rate * cal.tokens_per_record, 1), override=f"{key}={replicas}")


def _dataset(cal: Calibration, records: int) -> tuple[int, int]:
    """(dataset.limit, run.trials) giving at least ``records`` tasks from the calibration's dataset."""
    trials = math.ceil(records / cal.dataset_rows) if cal.dataset_rows and records > cal.dataset_rows else 1
    return math.ceil(records / trials), trials


def _at_least(n: int, factor: float) -> int:
    """n scaled by factor, never below n (peers, the in-flight cap, tool-pool members)."""
    return max(n, math.ceil(n * factor - 1e-9))


def _scaled(cal: Calibration, factor: float) -> tuple[int, int, int, dict[str, float]]:
    """(peers, in-flight cap, tool-pool members, resource -> its ratio to the calibration's) at ``factor``."""
    peers, cap = _at_least(cal.peers, factor), _at_least(cal.max_in_flight, factor)
    members = _at_least(cal.toolpool_size, factor) if cal.toolpool_size else 0
    ratios = {"in_flight": min(cap / cal.max_in_flight, peers / cal.peers),
              **({"toolpool": members / cal.toolpool_size} if members else {})}
    for p in cal.pools:
        ratios[f"llm:{p.pool}"] = max(1, math.ceil(p.replicas * factor - 1e-9)) / p.replicas
    return peers, cap, members, ratios


def size(cal: Calibration, records: int, hours: float, gpus_per_node: int = 8, gpu_budget: float = 0.0) -> Plan:
    fixed = cal.phases.fixed_s
    seconds = hours * 3600 - fixed
    if records <= 0 or seconds <= 0:
        raise ConfigError(f"--hours {hours} leaves no time after the fixed costs the calibration measured "
                          f"({fixed:.0f} s: launch, start-up, ramp, stop, report); give more hours")
    limit, trials = _dataset(cal, records)
    factor = limit * trials / seconds / cal.records_per_s
    peers, cap, members, ratios = _scaled(cal, factor)
    least = min(ratios.values())
    same = all(abs(r - least) < 1e-9 for r in ratios.values())
    limiting = cal.bound if same else min(ratios, key=lambda k: ratios[k]).partition(":")[0]
    rate = cal.records_per_s * least
    pools = [_pool(p, factor, rate) for p in cal.pools]
    steady_s = limit * trials / rate
    finish_h = (fixed + steady_s) / 3600
    gpus = sum(p.gpus for p in pools)
    overrides = [f"workflow={cal.workflow}", f"dataset.limit={limit}", f"run.trials={trials}",
                 *(p.override for p in pools), f"run.peers={peers}", f"run.max_in_flight={cap}",
                 *([f"toolpool.size={members}"] if members else [])]
    return Plan(workflow=cal.workflow, records=records, records_planned=limit * trials, hours=hours, pools=pools,
                peers=peers, max_in_flight=cap, toolpool_size=members, gpus=gpus,
                gpu_nodes=math.ceil(gpus / gpus_per_node) if gpus else 0, gpus_per_node=gpus_per_node,
                records_per_s=round(rate, 3), bound=limiting, bound_text=BOUNDS[limiting], fixed_s=round(fixed, 1),
                steady_s=round(steady_s, 1), expected_wall_s=round(fixed + steady_s, 1), expected_finish_h=finish_h,
                gpu_hours=gpus * finish_h, over_budget=bool(gpu_budget) and gpus * finish_h > gpu_budget,
                overrides=overrides, calibration=cal)
