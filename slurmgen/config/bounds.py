"""Ranges of the numeric knobs, checked before anything starts.

A value outside its range is refused with the key, the value and the valid range, so that
``dataset.limit=-5`` or ``run.trials=0`` never becomes a run that silently writes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from slurmgen.config import pools
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.input.duplicates import MODES
from slurmgen.protocol import Failure
from slurmgen.transport import ports
from slurmgen.transport.hosts import PLACED


@dataclass(frozen=True)
class Bound:
    key: str
    ok: Callable[[Any], bool]
    valid: str  # the range, as the message shows it
    applies: Callable[[Any], bool] = lambda node: True  # given the config (or the pool)


def at_least(n: float) -> Callable[[Any], bool]:
    return lambda v: v >= n


def above(n: float) -> Callable[[Any], bool]:
    return lambda v: v > n


def fraction(v: float) -> bool:
    return 0.0 <= v <= 1.0


BOUNDS: tuple[Bound, ...] = (
    Bound("dataset.limit", at_least(0), ">= 0 (0 = every row)"),
    Bound("dataset.max_row_bytes", lambda v: 1 <= v <= 32 << 20, "between 1 and 33554432 (32 MiB)"),
    Bound("run.trials", at_least(1), ">= 1"),
    Bound("run.peers", at_least(1), ">= 1"),
    Bound("run.max_in_flight", at_least(1), ">= 1"),
    Bound("run.peer_capacity", at_least(1), ">= 1"),
    Bound("run.max_attempts", at_least(1), ">= 1"),
    Bound("run.max_engine_deaths", at_least(1), ">= 1"),
    Bound("run.max_restarts", at_least(0), ">= 0"),
    Bound("run.lease_renew_s", above(0), "> 0"),
    Bound("run.lease_s", above(0), "> 0, and more than run.lease_renew_s"),
    Bound("run.heartbeat_s", above(0), "> 0"),
    Bound("run.heartbeat_liveness", at_least(1), ">= 1"),
    Bound("run.startup_timeout_s", above(0), "> 0"),
    Bound("run.drain_s", at_least(0), ">= 0"),
    Bound("run.max_failure_rate", fraction, "between 0 and 1"),
    Bound("run.min_tasks_for_rate", at_least(1), ">= 1"),
    Bound("run.fail_fast_tasks", at_least(0), ">= 0 (0 = off)"),
    Bound("cluster.local_nodes", at_least(1), ">= 1"),
    Bound("spill.threshold_bytes", at_least(0), ">= 0"),
    Bound("spill.max_bytes", at_least(1 << 20), ">= 1048576 (1 MiB)", applies=lambda conf: conf.spill.enabled),
    Bound("toolpool.size", at_least(-1), ">= 0, or -1 for the workflow's default"),
    Bound("toolpool.capacity", at_least(1), ">= 1"),
    Bound("toolpool.call_timeout_s", above(0), "> 0"),
)


# Every LLM pool's knobs (llm.* for the default pool, llms.<name>.* for the others).
POOL_BOUNDS: tuple[Bound, ...] = (
    Bound("replicas", at_least(1), ">= 1 for the servers slurmgen starts (sim, vllm, sglang)",
          applies=lambda pool: pool.backend in pools.STARTED_BACKENDS),
    Bound("time_scale", above(0), "> 0", applies=lambda pool: pool.backend == "sim"),
    Bound("max_retries", at_least(0), ">= 0"),
    Bound("backoff_s", at_least(0), ">= 0"),
    Bound("request_timeout_s", above(0), "> 0"),
    Bound("max_concurrency_per_endpoint", at_least(0), ">= 0 (0 = unlimited)"),
    Bound("max_connections_per_replica", at_least(0), ">= 0 (0 = only the open-file limit)"),
    Bound("rpm", at_least(0), ">= 0 (0 = unlimited)"),
    Bound("tpm", at_least(0), ">= 0 (0 = unlimited)"),
    Bound("max_concurrency", at_least(0), ">= 0 (0 = unlimited)"),
    Bound("sticky_load_factor", lambda v: v == 0 or v >= 1, "0 (always sticky) or >= 1"),
    Bound("max_model_len", at_least(1), ">= 1"),
    Bound("routing", lambda v: v in ("prefix", "sticky", "least_outstanding"), "prefix, sticky or least_outstanding"),
    Bound("prefix_match", fraction, "between 0 and 1"),
    Bound("balance_abs", at_least(0), ">= 0"),
    Bound("balance_rel", at_least(1), ">= 1"),
    Bound("scheduling_policy", lambda v: v in ("fcfs", "priority"), "fcfs or priority"),
    Bound("kv_fill", at_least(0), ">= 0 (0 = off)"),
)


def value_of(node: Any, key: str) -> Any:
    for part in key.split("."):
        node = getattr(node, part)
    return node


def check_bounds(conf: SlurmgenConf) -> None:
    """Raise ConfigError listing every knob outside its range."""
    bad = _outside(conf, BOUNDS, "")
    for name, pool in pools.used(conf).items():
        bad += _outside(pool, POOL_BOUNDS, pools.key(name) + ".")
        if 0 < pool.max_concurrency < conf.run.peers:
            bad.append(f"{pools.key(name)}.max_concurrency={pool.max_concurrency} is shared by run.peers="
                       f"{conf.run.peers} processes (one request each at least): raise it to run.peers or more, "
                       "or lower run.peers")
    if conf.run.lease_s <= conf.run.lease_renew_s:
        bad.append(f"run.lease_s={conf.run.lease_s!r} must be more than run.lease_renew_s={conf.run.lease_renew_s!r} "
                   "(holders renew leases every lease_renew_s)")
    if conf.dataset.hf and conf.dataset.path:
        bad.append(f"dataset.hf={conf.dataset.hf!r} and dataset.path={conf.dataset.path!r}: give one of them")
    unknown = [c for c in conf.run.retry_on if c not in {f.value for f in Failure}]
    if unknown:
        bad.append(f"run.retry_on={list(conf.run.retry_on)!r}: {', '.join(map(repr, unknown))} is no failure "
                   f"class; valid: {', '.join(Failure)}")
    if conf.dataset.on_duplicate not in MODES:
        bad.append(f"dataset.on_duplicate={conf.dataset.on_duplicate!r} is unknown; valid: {', '.join(MODES)}")
    try:
        ports.parse(conf.cluster.port_range)
    except ConfigError as exc:
        bad.append(str(exc))
    if conf.cluster.node_exec and not (conf.cluster.kind == "local" and conf.cluster.local_nodes > 1):
        bad.append("cluster.node_exec places processes on pretend nodes: it needs cluster=local and "
                   "cluster.local_nodes > 1")
    bad += pools.problems(conf)
    bad += _placement_errors(conf)
    if bad:
        raise ConfigError("invalid settings; nothing was started:\n  " + "\n  ".join(bad))


def _outside(node: Any, bounds: tuple[Bound, ...], prefix: str) -> list[str]:
    """One line per knob of ``node`` outside its range."""
    bad = []
    for bound in bounds:
        if not bound.applies(node):
            continue
        value = value_of(node, bound.key)
        if (isinstance(value, float) and math.isnan(value)) or not bound.ok(value):
            bad.append(f"{prefix}{bound.key}={value!r} is out of range: valid is {bound.valid}")
    return bad


def _placement_errors(conf: SlurmgenConf) -> list[str]:
    placement, n = conf.cluster.placement, conf.cluster.local_nodes
    if not placement:
        return []
    if not (conf.cluster.kind == "local" and n > 1):
        return ["cluster.placement places processes on pretend nodes: it needs cluster=local and "
                "cluster.local_nodes > 1"]
    bad = [f"cluster.placement.{c} is not a component; valid: {', '.join(PLACED)}" for c in placement if c not in PLACED]
    bad += [f"cluster.placement.{c}={nodes}: nodes are 0..{n - 1} (cluster.local_nodes={n}), at least one"
            for c, nodes in placement.items() if not nodes or any(not 0 <= k < n for k in nodes)]
    return bad
