"""Section ``scale``: a ramp of concurrent tasks in one fleet (e.g. 400 -> 12,400 -> 25,000 -> 50,000; nr
and 4-turn Coral): in flight at the peers and at the simulator, RSS per in-flight task, CPU per LLM
call, open files per process, and the first limit met."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any

import msgspec

from ..common import SLURMGEN_KINDS, Sampler, SimFleet, Watcher, bench_dataset, classify, cmdline, loadavg, log
from ..harness import run_slurmgen
from ..section import Context, Row, SectionResult
from .fmt import fmt
from .shared import CORAL_4, CORAL_4_ARGS, capacity_arg


class Params(msgspec.Struct, kw_only=True):
    scale_tasks: list[int]  # the ramp's points: tasks in flight (after the small one)
    scale_small: int  # the ramp's first point (RSS per task: the top point's over this one's)
    scale_workflows: list[str] = msgspec.field(default_factory=lambda: ["coral", "nr"])
    scale_rows: int  # rows of the ramp's dataset
    scale_ramp_s: float = 0.0012  # s of warm-up per task in flight (issuing 50,000 tasks takes a while)
    scale_time_scale: float = 5.0  # simulator time scale of the ramp
    scale_hold: float  # s of warm-up at each point, on top of the ramp's


class Summary(msgspec.Struct, kw_only=True):
    workflows: dict[str, dict[str, Any]]  # workflow -> ``ramp_entry``
    ramp: list[int]
    replicas: int
    peers: int
    time_scale: float
    rows: int


class Result(SectionResult, kw_only=True):
    scale: Summary
    max_in_flight: int | None = None
    bytes_per_inflight_task: int | None = None  # coral's: the headline figure
    timeline: dict[str, list[dict[str, float]]] = msgspec.field(default_factory=dict)  # run -> samples

    def store(self, results: dict[str, Any]) -> None:
        results["scale"] = msgspec.to_builtins(self.scale)
        results.setdefault("timeline", {}).update(self.timeline)
        if self.bytes_per_inflight_task is not None:
            results["bytes_per_inflight_task"] = self.bytes_per_inflight_task
        if self.max_in_flight is not None:
            results["max_in_flight"] = max(results.get("max_in_flight") or 0, self.max_in_flight)


class FdWatch(Watcher):
    """Peak open files per kind of process (driver, registry, peer: found by their run directory; sim: the
    fleet's) while a scale point runs, sampled from /proc by a thread; and the peers the registry expired."""

    def __init__(self, run_dir: Path, fleet: SimFleet, period: float = 0.5) -> None:
        self.run_dir, self.fleet, self.period = run_dir, fleet, period
        self.peak: dict[str, int] = {}
        self.limit = nofile_limit(os.getpid())
        super().__init__()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            counts: dict[str, int] = {}
            for pid, kind in self._pids().items():
                try:
                    counts[kind] = max(counts.get(kind, 0), len(os.listdir(f"/proc/{pid}/fd")))
                except OSError:
                    continue
                if kind != "sim":  # the processes' own limit, raised at start (slurmgen.proc.fdlimit)
                    self.limit = max(self.limit, nofile_limit(pid))
            for kind, n in counts.items():
                self.peak[kind] = max(self.peak.get(kind, 0), n)

    def _pids(self) -> dict[int, str]:
        key = str(self.run_dir)
        pids = {pid: "sim" for pid in self.fleet.pids()}
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in pids and key in cmdline(int(name)):
                pids[int(name)] = classify(cmdline(int(name)))
        return pids

    def expired(self, until: float) -> int:
        """Peers the registry expired before ``until`` (wall clock; the stop's own expiries excluded)."""
        try:
            lines = (self.run_dir / "logs" / "registry.log").read_text(errors="replace").splitlines()
        except OSError:
            return 0
        n = 0
        for line in lines:
            if " expired peer-" in line:
                try:
                    at = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    continue
                n += at <= until
        return n


def nofile_limit(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def first_limit(pt: dict[str, Any], m: int) -> str:
    """The first limit a scale point met, "" if none: file descriptors, the peers, the simulator."""
    worst = max(pt["fd_peak_by_kind"].items(), key=lambda kv: kv[1], default=("", 0))
    if pt["fd_limit"] and worst[1] >= 0.9 * pt["fd_limit"]:
        return f"file descriptors: {worst[0]} held {worst[1]} of its {pt['fd_limit']}"
    if pt["peers_expired"]:
        return f"peers: the registry expired a peer {pt['peers_expired']} times (its event loop held up)"
    if pt["tasks_in_flight_peak"] < 0.99 * m:
        return f"peers: {pt['tasks_in_flight_peak']} of {m} tasks in flight"
    if pt["stale_scrapes"]:
        return f"sim: {pt['stale_scrapes']} /metrics scrapes timed out (its event loop held up)"
    if pt["server_max_in_flight"] < 0.95 * min(m, pt["sim_connections_cap"]):
        return f"sim: {pt['server_max_in_flight']:.0f} requests in flight of {min(m, pt['sim_connections_cap'])}"
    return ""


def connections_cap(replicas: int) -> int:
    """Requests the simulator can hold at once under llm.max_connections_per_replica's default."""
    from slurmgen.config.types import LLMConf

    return LLMConf().max_connections_per_replica * replicas


def point(ctx: Context, res: dict[str, Any], sampler: Sampler, fds: FdWatch, m: int) -> dict[str, Any]:
    until = res["t_window_end"]  # before the stop: shutting down allocates
    calls = max(res["requests"], 1)
    ours = sum(v for k, v in res["cpu_s_by_kind"].items() if k in SLURMGEN_KINDS)
    pt = {
        "tasks_in_flight_peak": res["tasks_in_flight_peak"], "server_max_in_flight": res["server_max_in_flight"],
        "sim_in_flight_mean": round(res["sim_in_flight_mean"], 1),
        "sim_connections_cap": connections_cap(ctx.shared.replicas),
        "rss_peak": sampler.peak_rss(until=until),
        "rss_peak_by_kind": {k: sampler.peak_rss((k,), until=until) for k in SLURMGEN_KINDS},
        "sim_rss_peak": max(s.sim_rss for s in sampler.samples if s.t <= until),
        "cpu_ms_per_llm_call": round(ours / calls * 1e3, 3),
        "sim_cpu_ms_per_llm_call": round(res["sim_cpu_s"] / calls * 1e3, 3),
        "llm_calls_window": res["requests"], "tokens_per_s": round(res["tokens_per_s"], 1),
        "cores_busy": res["cores_busy"], "ran_out": res["ran_out"], "stale_scrapes": res["stale_scrapes"],
        "fd_peak_by_kind": fds.peak, "fd_limit": fds.limit,
        "peers_expired": fds.expired(until=time.time() - (time.monotonic() - until)),
        "load_avg": loadavg(),
    }
    pt["limit"] = first_limit(pt, m)
    return pt


def ramp(ctx: Context, p: Params, workflow: str, timeline: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Each point of the ramp in one fleet: its figures by tasks in flight (its samples into ``timeline``)."""
    s = ctx.shared
    args = CORAL_4_ARGS if workflow == "coral" else []
    dataset = str(bench_dataset(workflow, p.scale_rows))
    points: dict[int, dict[str, Any]] = {}
    with SimFleet(s.replicas, workflow, time_scale=p.scale_time_scale) as fleet:
        for m in (p.scale_small, *p.scale_tasks):
            name = f"scale-{workflow}-{m}"
            with FdWatch(ctx.out / "runs" / name, fleet) as fds:
                res, sampler = run_slurmgen(name, ctx.out, workflow, fleet, peers=s.peers, max_in_flight=m, trials=1,
                                            warm=p.scale_hold + m * p.scale_ramp_s, window=5.0, dataset=dataset,
                                            curve_on=ctx.curve_on, spill=ctx.spill, watch_stats=True,
                                            extra=[*args, capacity_arg(m)])
            pt = points[m] = point(ctx, res, sampler, fds, m)
            timeline[name] = sampler.timeline()
            ctx.peak(res["server_max_in_flight"])
            log(f"{name}: {pt['tasks_in_flight_peak']} tasks in flight, sim {pt['server_max_in_flight']:.0f}, "
                f"{pt['cpu_ms_per_llm_call']} ms CPU per call, fds {pt['fd_peak_by_kind']}, limit {pt['limit']}")
    return points


def ramp_entry(p: Params, workflow: str, points: dict[int, dict[str, Any]]) -> dict[str, Any]:
    small, top = points[p.scale_small], points[max(p.scale_tasks)]
    per_task = (top["rss_peak"] - small["rss_peak"]) / max(top["tasks_in_flight_peak"]
                                                           - small["tasks_in_flight_peak"], 1)
    first = next(((m, pt["limit"]) for m, pt in sorted(points.items()) if pt["limit"]), None)
    return {
        "workflow": workflow, "overrides": CORAL_4 if workflow == "coral" else {},
        "points": {str(m): pt for m, pt in points.items()},
        "max_in_flight": max(pt["tasks_in_flight_peak"] for pt in points.values()),
        "bytes_per_inflight_task": round(per_task),
        "sim_bytes_per_request": round((top["sim_rss_peak"] - small["sim_rss_peak"]) /
                                       max(top["server_max_in_flight"] - small["server_max_in_flight"], 1)),
        "first_limit": f"at {first[0]} tasks: {first[1]}" if first else f"none up to {max(points)} tasks",
    }


def rows(r: dict[str, Any]) -> list[Row]:
    b = r.get("bytes_per_inflight_task")
    out = [("concurrent tasks in one run (max)", fmt(r.get("max_in_flight")), ">= 50000"),
           ("memory per in-flight task (KiB)", fmt(b / 1024 if b is not None else None), "")]
    for wf, e in (r.get("scale") or {}).get("workflows", {}).items():
        top = e["points"][max(e["points"], key=int)]
        out.append((f"scale {wf}: tasks / at the simulator / CPU per call (ms)",
                    f"{top['tasks_in_flight_peak']} / {top['server_max_in_flight']:.0f} / "
                    f"{fmt(top['cpu_ms_per_llm_call'])}", ""))
        out.append((f"scale {wf}: first limit", e["first_limit"], ""))
    return out


class Scale:
    name = "scale"
    opt_in = False
    quick = Params(scale_tasks=[2000], scale_small=200, scale_rows=5000, scale_hold=10.0)
    full = Params(scale_tasks=[12400, 25000, 50000], scale_small=400, scale_rows=60000, scale_hold=30.0)
    table = ((60, rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        """Ramp the tasks in flight in one fleet per workflow (small, then each of scale_tasks), with the run's
        defaults (llm.max_connections_per_replica: the simulator holds at most that many per replica, the rest
        wait in the peers)."""
        s = ctx.shared
        out = Result(scale=Summary(workflows={}, ramp=p.scale_tasks, replicas=s.replicas, peers=s.peers,
                                   time_scale=p.scale_time_scale, rows=p.scale_rows))
        for workflow in p.scale_workflows:
            entry = out.scale.workflows[workflow] = ramp_entry(p, workflow, ramp(ctx, p, workflow, out.timeline))
            if workflow == "coral":  # the headline figures, as before: 4-turn Coral
                out.bytes_per_inflight_task = entry["bytes_per_inflight_task"]
            out.max_in_flight = max(out.max_in_flight or 0, entry["max_in_flight"])
            ctx.publish(out)
        log(f"scale: {ctx.results['max_in_flight']} tasks in flight; first limit: "
            + "; ".join(f"{w}: {e['first_limit']}" for w, e in out.scale.workflows.items()))
        return out
