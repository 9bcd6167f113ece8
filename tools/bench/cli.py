"""The benchmark's sections and its command line.

    python tools/bench.py [--quick] [--out DIR] [--only SECTION,...]

Sections (each writes its part of DIR/results.json as soon as it is done):

- ``micro``: CPU µs per hop (4 KiB task message, two processes, real sockets, codec,
  router) and per LLM call in the client (real ``LLMClient``, zero-latency replica);
- ``cpu``: CPU of all slurmgen processes (driver, registry, peers — not the simulator)
  per LLM call, on a 4-turn Coral run against zero-latency replicas;
- ``saturation``: slurmgen's tokens/s over the ideal direct client's, same replicas,
  same concurrency, same request stream (nr, coral); on nr, in the same run, the
  baselines (central single loop, batch barrier, thread pool);
- ``pools``: two LLM pools in one run (coral 4-turn, the teacher on a 70B fleet, every other
  role on an 8B fleet): each pool's tokens/s, slurmgen's over the ideal client's, and its
  mean request latency at the replicas;
- ``scale``: a ramp of concurrent tasks in one fleet (400 -> 12,400 -> 25,000 -> 50,000; nr and 4-turn
  Coral): in flight at the peers and at the simulator, RSS per in-flight task, CPU per LLM call, open
  files per process, and the first limit met;
- ``scaling``: tokens/s as agent peers and replicas grow 1 -> 2 -> 4 -> 8;
- ``spill``: bytes on the wire with and without spill (pending until peers count bytes);
- ``kv``: routing and scheduling policies against the servers' KV cache (coral with many turns,
  tau2 mock with many concurrent tasks; tight and ample KV): finished tasks/s, tokens/s, prefix
  hit rate, preemptions, task latency, ratio over least-outstanding FCFS (``kv.py``);
- ``peers_matrix`` (only with ``--only`` or ``--peers``): Matrix itself (its own venv, its Coral flow, a
  local Ray head) and slurmgen on the same replicas, same concurrency (``peer_matrix.py``);
- ``peers_tau2`` (only with ``--only`` or ``--peers``): tau2-bench's own runner
  (``tau2.run.run_tasks``) next to slurmgen's tau2 workflow on the same replicas (peer_tau2.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from . import barrier, peer_matrix, peer_tau2
from .common import (
    DEFAULT_POOL,
    SLURMGEN_KINDS,
    Fleet,
    SimFleet,
    SimFleets,
    Watcher,
    bench_dataset,
    classify,
    cmdline,
    dump_json,
    loadavg,
    log,
    machine,
)
from .harness import BENCH_PY, run_slurmgen, run_worker
from .peer_matrix import PARAMS as MATRIX_PARAMS

SECTIONS = ("micro", "cpu", "saturation", "pools", "scale", "scaling", "spill", "kv", "peers_matrix", "peers_tau2")
OPT_IN = ("peers_",)  # sections run only when named in --only, or all of them with --peers (minutes each)

CORAL_4 = {"max_turns": 4}  # the 4-turn Coral conversation of the issue
CORAL_4_ARGS = ["workflow.max_turns=4"]

# the pools section: configs/llms/teacher_student.yaml's two models (pool -> served model, latency profile)
# and its role mapping (workflow.role_llm: the teacher on its own pool, every other role on the default)
POOL_FLEETS = {"teacher": ("sim-llama-3.1-70b", "4xa100-llama3.1-70b"),
               DEFAULT_POOL: ("sim-llama-3.1-8b", "a100-llama3.1-8b")}
POOL_ROLES = {"teacher": "teacher"}

QUICK: dict[str, Any] = dict(
    scale=20.0, replicas=2, peers=2, per_replica=256, warm=3.0, window=6.0, record_tasks=1000, repeats=1, micro_repeats=1,
    sat_workflows=["nr", "coral"],
    nr_replicas=2, nr_scale=20.0, equal_concurrency=False, batch_at_max_scaling=False,
    thread_sweep=[3], hop_s=1.5, client_s=2.0, cpu_tasks=300, scale_tasks=[2000], scale_small=200,
    scale_workflows=["coral", "nr"], scale_rows=5000,
    scale_ramp_s=0.0012,
    nr_rows=5000, coral_rows=5000,
    scale_time_scale=5.0, scale_hold=10.0, scaling_ks=[1, 2], scaling_scale=5.0,
    pool_replicas={"teacher": 1, DEFAULT_POOL: 1},
    **peer_tau2.QUICK, **barrier.QUICK,
)
FULL: dict[str, Any] = dict(
    scale=20.0, replicas=2, peers=2, per_replica=256, warm=8.0, window=30.0, record_tasks=5000, repeats=2, micro_repeats=3,
    sat_workflows=["nr", "coral"],
    batch_at_max_scaling=True,
    nr_replicas=4, nr_scale=10.0, equal_concurrency=True,
    thread_sweep=[3, 16, 64, 256], hop_s=5.0, client_s=6.0, cpu_tasks=2400, scale_tasks=[12400, 25000, 50000], scale_small=400,
    scale_workflows=["coral", "nr"], scale_rows=60000, scale_ramp_s=0.0012,
    nr_rows=20000, coral_rows=15000,
    scale_time_scale=5.0, scale_hold=30.0, scaling_ks=[1, 2, 4, 8], scaling_scale=5.0,
    pool_replicas={"teacher": 1, DEFAULT_POOL: 1},
    **peer_tau2.FULL, **barrier.FULL,
)

QUICK.update(MATRIX_PARAMS["quick"])
FULL.update(MATRIX_PARAMS["full"])

TARGETS = {
    "saturation": 0.95, "pool_saturation": 0.95, "cpu_us_per_hop": 100.0, "cpu_us_per_llm_call": 300.0,
    "cpu_ms_per_llm_call_all": 1.2,
    "server_max_in_flight": 5000, "max_in_flight": 50000, "batch_barrier_ratio": 2.0, "thread_pool_ratio": 10.0,
}


class Bench:
    def __init__(self, out: Path, quick: bool, curve_on: bool) -> None:
        self.out, self.quick, self.curve_on = out, quick, curve_on
        self.p = dict(QUICK if quick else FULL)
        self.results: dict[str, Any] = {
            "mode": "quick" if quick else "full", "targets": TARGETS, "machine": machine(),
            "load_avg": {"start": loadavg()}, "curve": curve_on, "params": self.p, "timeline": {},
            "saturation": {}, "pools": {}, "baselines": {}, "scaling": [], "spill": {"status": "pending"},
            "cpu_us_per_hop": None, "cpu_us_per_llm_call": None, "cpu_ms_per_llm_call_all": None,
            "server_max_in_flight": 0, "max_in_flight": None, "bytes_per_inflight_task": None,
            "section_errors": {}, "section_s": {},
        }

    def save(self) -> None:
        dump_json(self.out / "results.json", self.results)

    def _server_peak(self, value: float) -> None:
        self.results["server_max_in_flight"] = max(self.results["server_max_in_flight"] or 0, int(value))

    def _dataset(self, workflow: str) -> str:
        return str(bench_dataset(workflow, self.p[f"{workflow}_rows"]))

    # -- micro -------------------------------------------------------------------------

    def micro(self) -> None:
        import statistics
        import subprocess

        from .micro import run_hop

        p, r = self.p, self.results
        n = p["micro_repeats"]
        configs = {"w64": dict(window=64, batched=True), "w64_curve": dict(window=64, curve_on=True, batched=True),
                   "w1": dict(window=1, batched=True), "w64_futures": dict(window=64)}
        hops: dict[str, list[dict[str, Any]]] = {k: [] for k in configs}
        for _ in range(n):  # interleaved repeats; the median of each is reported
            for k, kw in configs.items():
                hops[k].append(run_hop(BENCH_PY, duration=p["hop_s"], tmp=self.out, **kw))
        med = {k: statistics.median(h["cpu_us_per_hop"] for h in v) for k, v in hops.items()}
        r["hop"] = {"cpu_us_per_hop_median": med, "runs": hops,
                    "note": "the runtime's hot path (slurmgen.runtime.outbox: drain the inbox non-blocking, send "
                            "non-blocking on the socket's shadow); w64: 64 task messages circulating; w1: one "
                            "(ping-pong); curve: CurveZMQ on; futures: pyzmq's asyncio send/recv per message, "
                            "the runtime's earlier path, for comparison"}
        r["cpu_us_per_hop"] = med["w64_curve"] if self.curve_on else med["w64"]
        log(f"hop: {med} µs")
        clients = []
        with SimFleet(1, "coral", profile="zero", time_scale=0) as fleet:
            for _ in range(n):
                out = subprocess.run([sys.executable, BENCH_PY, "client-bench", "--url", fleet.urls[0], "--window",
                                      "64", "--duration", str(p["client_s"])], capture_output=True, text=True,
                                     check=True)
                clients.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r["client"] = {"runs": clients, "cpu_us_per_call_median": statistics.median(c["cpu_us_per_call"]
                                                                                      for c in clients)}
        r["cpu_us_per_llm_call"] = r["client"]["cpu_us_per_call_median"]
        log(f"client: {r['cpu_us_per_llm_call']} µs per call")

    # -- cpu: all slurmgen processes per LLM call, zero-latency replicas -------------------

    def cpu(self) -> None:
        """With the run's defaults (CurveZMQ on unless --no-curve), then the same run with it off."""
        r = self.results
        r["cpu"] = self._cpu_run("cpu-coral4-zero", self.curve_on)
        r["cpu_ms_per_llm_call_all"] = r["cpu"]["cpu_ms_per_llm_call_window"]
        other = self._cpu_run("cpu-coral4-zero-curve-" + ("off" if self.curve_on else "on"), not self.curve_on)
        on, off = (r["cpu"], other) if self.curve_on else (other, r["cpu"])
        r["curve_cost"] = {
            "cpu_ms_per_llm_call_curve_on": on["cpu_ms_per_llm_call_window"],
            "cpu_ms_per_llm_call_curve_off": off["cpu_ms_per_llm_call_window"],
            "ratio_on_over_off": round(on["cpu_ms_per_llm_call_window"]
                                       / max(off["cpu_ms_per_llm_call_window"], 1e-9), 3),
            "requests_per_s_curve_on": on["requests_per_s"], "requests_per_s_curve_off": off["requests_per_s"],
            "note": "the cpu section's run twice, CurveZMQ on and off, one after the other",
        }
        log(f"curve cost: {r['curve_cost']['ratio_on_over_off']}x CPU per LLM call with CurveZMQ on")

    def _cpu_run(self, name: str, curve_on: bool) -> dict[str, Any]:
        p = self.p
        with SimFleet(p["replicas"], "coral", profile="zero", time_scale=0) as fleet:
            res, sampler = run_slurmgen(name, self.out, "coral", fleet, peers=p["peers"],
                                        max_in_flight=256, trials=1, warm=0, window=0, timebox=False,
                                        curve_on=curve_on, dataset=self._dataset("coral"),
                                        extra=[*CORAL_4_ARGS, f"dataset.limit={p['cpu_tasks']}"])
        cpu_win = res["cpu_s_by_kind"]
        slurmgen_cpu = sum(v for k, v in cpu_win.items() if k in SLURMGEN_KINDS)
        per_call = slurmgen_cpu / max(res["requests"], 1) * 1e3
        total = sampler.total_cpu()
        total_requests = sampler.samples[-1].requests - sampler.samples[0].requests
        self._server_peak(res["server_max_in_flight"])
        log(f"cpu (curve {'on' if curve_on else 'off'}): {per_call:.3f} ms per LLM call (window)")
        return {
            "workflow": "coral", "max_turns": 4, "replicas": fleet.n, "peers": p["peers"], "max_in_flight": 256,
            "curve": curve_on,
            "llm_calls_window": res["requests"], "cpu_s_window_by_kind": cpu_win,
            "cpu_ms_per_llm_call_window": round(per_call, 3),
            "llm_calls_total": total_requests, "cpu_s_total_by_kind": {k: round(v, 3) for k, v in total.items()},
            "cpu_ms_per_llm_call_total": round(sum(total.values()) / max(total_requests, 1) * 1e3, 3),
            "sim_cpu_ms_per_llm_call_window": round(res["sim_cpu_s"] / max(res["requests"], 1) * 1e3, 3),
            "requests_per_s": res["requests_per_s"], "cores_busy": res["cores_busy"],
            "hops_per_llm_call": _hops_per_call(res["peer_stats"], total_requests),
            "peer_stats": res["peer_stats"],
        }

    # -- saturation and baselines ---------------------------------------------------------

    def _record(self, workflow: str, overrides: dict[str, Any] | None, models: dict[str, str] | None = None,
                tag: str = "") -> tuple[str, dict[str, Any]]:
        """The request stream: the workflow's first tasks run once against a zero-latency replica (one per
        pool of ``models``, pool -> served model: each request is recorded with its pool)."""
        tag = tag or workflow
        chains = self.out / "runs" / f"chains-{tag}.jsonl"
        chains.parent.mkdir(parents=True, exist_ok=True)
        fleet: Fleet = SimFleet(1, workflow, profile="zero", time_scale=0)
        if models:
            fleet = SimFleets({pool: SimFleet(1, workflow, profile="zero", time_scale=0, model=model)
                               for pool, model in models.items()})
        with fleet:
            spec = dict(kind="record", workflow=workflow, urls=fleet.urls, concurrency=64,
                        dataset=self._dataset(workflow), max_tasks=self.p["record_tasks"],
                        workflow_overrides=overrides, chains=str(chains), **(_pool_spec(fleet) if models else {}))
            res, _ = run_worker(f"record-{tag}", spec, fleet, warm=0, window=0, timebox=False)
        return str(chains), res.get("worker", {})

    def saturation(self) -> None:
        p = self.p
        if "nr" in p["sat_workflows"]:
            self._saturation("nr", None, [], p["nr_replicas"], p["nr_scale"], baselines=True)
        if "coral" in p["sat_workflows"]:
            self._saturation("coral", CORAL_4, CORAL_4_ARGS, p["replicas"], p["scale"], baselines=False)

    def _saturation(self, workflow: str, overrides: dict[str, Any] | None, args: list[str], replicas: int,
                    scale: float, baselines: bool) -> None:
        p, r = self.p, self.results
        chains, recorded = self._record(workflow, overrides)
        m = p["per_replica"] * replicas
        peers = max(p["peers"], replicas // 2)
        dataset = self._dataset(workflow)
        runs: dict[str, Any] = {}
        reps: dict[str, list[dict[str, Any]]] = {"ideal": [], "slurmgen": []}
        with SimFleet(replicas, workflow, time_scale=scale) as fleet:
            for i in range(p["repeats"]):  # interleaved, so that a drift of the machine's load hits both
                ideal_spec = dict(kind="ideal", workflow=workflow, urls=fleet.urls, concurrency=m, chains=chains)
                res, _ = run_worker(f"{workflow}-ideal-{i}", ideal_spec, fleet, warm=p["warm"], window=p["window"])
                reps["ideal"].append(res)
                res, _ = run_slurmgen(f"{workflow}-slurmgen-{i}", self.out, workflow, fleet, peers=peers,
                                      max_in_flight=m, trials=1, warm=p["warm"], window=p["window"],
                                      curve_on=self.curve_on, extra=[*args, f"run.peer_capacity={max(512, m)}"],
                                      dataset=dataset)
                reps["slurmgen"].append(res)
            for key, lst in reps.items():
                runs[key] = dict(lst[-1])
                runs[key]["tokens_per_s"] = sum(x["tokens_per_s"] for x in lst) / len(lst)
                runs[key]["tokens_per_s_repeats"] = [round(x["tokens_per_s"], 1) for x in lst]
            if baselines:
                self._baselines(workflow, fleet, m, runs, peers, dataset)
            else:  # multi-turn: the batch barrier waits for each batch's longest conversation
                barrier.multi_turn(self, workflow, fleet, m, runs, peers, dataset, overrides, args)
        sat = runs["slurmgen"]["tokens_per_s"] / max(runs["ideal"]["tokens_per_s"], 1e-9)
        r["saturation"][workflow] = {
            "ratio": round(sat, 4), "slurmgen_tokens_per_s": round(runs["slurmgen"]["tokens_per_s"], 1),
            "ideal_tokens_per_s": round(runs["ideal"]["tokens_per_s"], 1), "concurrency": m, "peers": peers,
            "replicas": replicas, "time_scale": scale, "recorded": recorded, "overrides": overrides or {},
            "repeats": {k: [round(x["tokens_per_s"], 1) for x in v] for k, v in reps.items()},
            "runs": {k: _slim(v) for k, v in runs.items()},
        }
        for v in runs.values():
            self._server_peak(v["server_max_in_flight"])
        log(f"saturation {workflow}: {sat:.3f}")

    def _baselines(self, workflow: str, fleet: SimFleet, m: int, runs: dict[str, Any], peers: int,
                   dataset: str) -> None:
        p, r = self.p, self.results
        common = dict(workflow=workflow, urls=fleet.urls, dataset=dataset)
        if p["equal_concurrency"]:  # slurmgen held to the batch baseline's 400 tasks: the barrier's cost alone
            runs["slurmgen_400"], _ = run_slurmgen(f"{workflow}-slurmgen-400", self.out, workflow, fleet, peers=peers,
                                                   max_in_flight=400, trials=1, warm=p["warm"],
                                                   window=p["window"], curve_on=self.curve_on, dataset=dataset)
        runs["central"], _ = run_worker("central", dict(kind="central", concurrency=m, **common), fleet,
                                        warm=p["warm"], window=p["window"])
        runs["batch"], _ = run_worker("batch", dict(kind="batch", concurrency=4, batch=100, **common), fleet,
                                      warm=p["warm"], window=p["window"])
        sweep = {}
        for c in p["thread_sweep"]:
            sweep[c], _ = run_worker(f"threads-{c}", dict(kind="threads", concurrency=c, **common), fleet,
                                     warm=p["warm"], window=p["window"])
        best_c = max(sweep, key=lambda c: sweep[c]["tokens_per_s"])
        runs["threads_default"], runs["threads_best"] = sweep[3], sweep[best_c]
        ours = runs["slurmgen"]["tokens_per_s"]

        ours_gen = runs["slurmgen"].get("generation_tokens_per_s")

        def entry(key: str, **extra: Any) -> dict[str, Any]:
            tps = runs[key]["tokens_per_s"]
            out = {"tokens_per_s": round(tps, 1), "ratio": round(ours / max(tps, 1e-9), 3), **extra}
            gen = runs[key].get("generation_tokens_per_s")
            if gen and ours_gen:  # decode alone: what batching helps, and what a barrier starves
                out["generation_tokens_per_s"] = round(gen, 1)
                out["generation_ratio"] = round(ours_gen / gen, 3)
            return out

        r["baselines"] = {
            "workflow": workflow, "slurmgen_tokens_per_s": round(ours, 1), "slurmgen_concurrency": m,
            "replicas": fleet.n, "time_scale": fleet.time_scale,
            "central_single_loop": entry("central", concurrency=m),
            "batch_barrier": entry("batch", batch=100, concurrency_batches=4),
            "thread_pool_default": entry("threads_default", threads=3),
            "thread_pool_best": entry("threads_best", threads=best_c),
            "thread_pool_sweep": {str(c): round(v["tokens_per_s"], 1) for c, v in sweep.items()},
            "sim_in_flight_mean": {k: round(runs[k]["sim_in_flight_mean"], 1) for k in
                                   ("slurmgen", "central", "batch", "threads_default", "threads_best")},
        }
        if "slurmgen_400" in runs:
            tps400 = runs["slurmgen_400"]["tokens_per_s"]
            r["baselines"]["batch_barrier_equal_concurrency"] = {
                "slurmgen_400_tokens_per_s": round(tps400, 1),
                "ratio": round(tps400 / max(runs["batch"]["tokens_per_s"], 1e-9), 3)}
            gen400, gen_b = runs["slurmgen_400"].get("generation_tokens_per_s"), runs["batch"].get(
                "generation_tokens_per_s")
            if gen400 and gen_b:
                r["baselines"]["batch_barrier_equal_concurrency"]["generation_ratio"] = round(gen400 / gen_b, 3)
        ratios = {k: v["ratio"] for k, v in r["baselines"].items() if isinstance(v, dict) and "ratio" in v}
        log(f"baselines: {json.dumps(ratios)}")

    # -- pools: two models in one run, each pool against its own ideal client ------------------

    def pools(self) -> None:
        p, r = self.p, self.results
        models = {pool: model for pool, (model, _) in POOL_FLEETS.items()}
        chains, recorded = self._record("coral", {**CORAL_4, "role_llm": POOL_ROLES}, models, tag="coral-pools")
        replicas = p["pool_replicas"]
        m = p["per_replica"] * sum(replicas.values())
        args = [*CORAL_4_ARGS, *(f"workflow.role_llm.{role}={pool}" for role, pool in POOL_ROLES.items()),
                f"run.peer_capacity={max(512, m)}"]
        fleets = SimFleets({pool: SimFleet(replicas[pool], "coral", profile=profile, model=model,
                                           time_scale=p["scale"]) for pool, (model, profile) in POOL_FLEETS.items()})
        reps: dict[str, list[dict[str, Any]]] = {"ideal": [], "slurmgen": []}
        with fleets:
            for i in range(p["repeats"]):  # interleaved, as the saturation section
                spec = dict(kind="ideal", workflow="coral", urls=fleets.urls, concurrency=m, chains=chains,
                            **_pool_spec(fleets))
                res, _ = run_worker(f"pools-ideal-{i}", spec, fleets, warm=p["warm"], window=p["window"])
                reps["ideal"].append(res)
                res, _ = run_slurmgen(f"pools-slurmgen-{i}", self.out, "coral", fleets, peers=p["peers"],
                                      max_in_flight=m, trials=1, warm=p["warm"], window=p["window"],
                                      curve_on=self.curve_on, extra=args, dataset=self._dataset("coral"))
                reps["slurmgen"].append(res)
        by_pool = {pool: _pool_entry(pool, reps, replicas[pool]) for pool in POOL_FLEETS}
        total = {k: sum(x["tokens_per_s"] for x in v) / len(v) for k, v in reps.items()}
        r["pools"] = {
            "workflow": "coral", "max_turns": 4, "role_llm": POOL_ROLES, "concurrency": m, "peers": p["peers"],
            "time_scale": p["scale"], "curve": self.curve_on, "spill_in_runs": _spill_in_runs(),
            "recorded": recorded, "by_pool": by_pool,
            "ratio_min": min(e["ratio"] for e in by_pool.values()),
            "ratio_all_pools": round(total["slurmgen"] / max(total["ideal"], 1e-9), 4),
            "runs": {k: _slim(v[-1]) for k, v in reps.items()},
            "note": "tokens/s and latency from each pool's replicas' own counters over the window; latency = "
                    "vllm:e2e_request_latency_seconds (arrival at the replica to its last token, wall seconds); "
                    "means over the interleaved repeats",
        }
        for v in reps.values():
            for x in v:
                self._server_peak(x["server_max_in_flight"])
        for pool, e in by_pool.items():
            log(f"pools {pool}: {e['ratio']:.3f} ({e['slurmgen_tokens_per_s']:.0f} / {e['ideal_tokens_per_s']:.0f} "
                f"tokens/s)")

    # -- scale ------------------------------------------------------------------------------

    def scale(self) -> None:
        """Ramp the tasks in flight in one fleet per workflow (small, then each of scale_tasks), with the run's
        defaults (llm.max_connections_per_replica: the simulator holds at most that many per replica, the rest
        wait in the peers). Per point: tasks in flight at the peers and at the simulator, RSS, CPU per LLM call,
        open files per process; then the first limit met."""
        p, r = self.p, self.results
        r["scale"] = {"workflows": {}, "ramp": p["scale_tasks"], "replicas": p["replicas"], "peers": p["peers"],
                      "time_scale": p["scale_time_scale"], "rows": p["scale_rows"]}
        for workflow in p["scale_workflows"]:
            r["scale"]["workflows"][workflow] = entry = self._scale_ramp(workflow)
            if workflow == "coral":  # the headline figures, as before: 4-turn Coral
                r["bytes_per_inflight_task"] = entry["bytes_per_inflight_task"]
            r["max_in_flight"] = max(r["max_in_flight"] or 0, entry["max_in_flight"])
            self.save()
        log(f"scale: {r['max_in_flight']} tasks in flight; first limit: "
            + "; ".join(f"{w}: {e['first_limit']}" for w, e in r["scale"]["workflows"].items()))

    def _scale_ramp(self, workflow: str) -> dict[str, Any]:
        p = self.p
        args = CORAL_4_ARGS if workflow == "coral" else []
        dataset = str(bench_dataset(workflow, p["scale_rows"]))
        points: dict[int, dict[str, Any]] = {}
        with SimFleet(p["replicas"], workflow, time_scale=p["scale_time_scale"]) as fleet:
            for m in (p["scale_small"], *p["scale_tasks"]):
                name = f"scale-{workflow}-{m}"
                with _FdWatch(self.out / "runs" / name, fleet) as fds:
                    warm = p["scale_hold"] + m * p["scale_ramp_s"]  # issuing 50,000 tasks takes a while
                    res, sampler = run_slurmgen(name, self.out, workflow, fleet, peers=p["peers"], max_in_flight=m,
                                                trials=1, warm=warm, window=5.0, dataset=dataset,
                                                curve_on=self.curve_on, watch_stats=True,
                                                extra=[*args, f"run.peer_capacity={max(512, m)}"])
                points[m] = self._scale_point(res, sampler, fds, m)
                self.results["timeline"][name] = sampler.timeline()
                self._server_peak(res["server_max_in_flight"])
                log(f"{name}: {points[m]['tasks_in_flight_peak']} tasks in flight, sim {points[m]['server_max_in_flight']:.0f}, "
                    f"{points[m]['cpu_ms_per_llm_call']} ms CPU per call, fds {points[m]['fd_peak_by_kind']}, "
                    f"limit {points[m]['limit']}")
        small, top = points[p["scale_small"]], points[max(p["scale_tasks"])]
        per_task = (top["rss_peak"] - small["rss_peak"]) / max(top["tasks_in_flight_peak"] - small["tasks_in_flight_peak"], 1)
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

    def _scale_point(self, res: dict[str, Any], sampler: Any, fds: _FdWatch, m: int) -> dict[str, Any]:
        until = res["t_window_end"]  # before the stop: shutting down allocates
        calls = max(res["requests"], 1)
        ours = sum(v for k, v in res["cpu_s_by_kind"].items() if k in SLURMGEN_KINDS)
        cap = self._connections_cap()
        pt = {
            "tasks_in_flight_peak": res["tasks_in_flight_peak"], "server_max_in_flight": res["server_max_in_flight"],
            "sim_in_flight_mean": round(res["sim_in_flight_mean"], 1), "sim_connections_cap": cap,
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
        pt["limit"] = _scale_limit(pt, m)
        return pt

    def _connections_cap(self) -> int:
        """Requests the simulator can hold at once under llm.max_connections_per_replica's default."""
        from slurmgen.config.types import LLMConf

        return LLMConf().max_connections_per_replica * self.p["replicas"]

    # -- scaling ------------------------------------------------------------------------------

    def scaling(self) -> None:
        p, r = self.p, self.results
        r["scaling"] = []
        base = None
        for k in p["scaling_ks"]:
            m = p["per_replica"] * k
            with SimFleet(k, "nr", time_scale=p["scaling_scale"]) as fleet:
                res, _ = run_slurmgen(f"scaling-{k}", self.out, "nr", fleet, peers=k, max_in_flight=m, trials=1,
                                      dataset=self._dataset("nr"),
                                      warm=p["warm"], window=p["window"], curve_on=self.curve_on,
                                      extra=[f"run.peer_capacity={max(512, m)}"])
                if k == max(p["scaling_ks"]) and p["batch_at_max_scaling"]:  # the batch barrier on this hardware
                    spec = dict(kind="batch", concurrency=4, batch=100, workflow="nr", urls=fleet.urls,
                                dataset=self._dataset("nr"))
                    b, _ = run_worker(f"batch-{k}", spec, fleet, warm=p["warm"], window=p["window"])
                    r.setdefault("baselines", {})[f"batch_barrier_{k}_replicas"] = {
                        "replicas": k, "time_scale": fleet.time_scale, "slurmgen_tokens_per_s": round(res["tokens_per_s"], 1),
                        "slurmgen_concurrency": m, "tokens_per_s": round(b["tokens_per_s"], 1),
                        "ratio": round(res["tokens_per_s"] / max(b["tokens_per_s"], 1e-9), 3),
                        "sim_in_flight_mean": round(b["sim_in_flight_mean"], 1)}
            tps = res["tokens_per_s"]
            base = base or tps / k
            r["scaling"].append({
                "peers": k, "replicas": k, "max_in_flight": m, "time_scale": p["scaling_scale"],
                "tokens_per_s": round(tps, 1), "efficiency": round(tps / (k * base), 3),
                "engine_busy_frac": res["engine_busy_frac"], "cores_busy": res["cores_busy"],
                "sim_in_flight_mean": round(res["sim_in_flight_mean"], 1),
                "cpu_limited": res["cores_busy"] > 0.8 * (os.cpu_count() or 1),
            })
            self.save()

    # -- kv -----------------------------------------------------------------------------------

    def kv(self) -> None:
        from . import kv

        self.results["kv"] = kv.run_section(kv.KVSection(quick=self.quick), say=print)
        self.save()

    # -- peers --------------------------------------------------------------------------------

    def peers_tau2(self) -> None:
        peer_tau2.section(self)

    # -- spill --------------------------------------------------------------------------------

    def spill(self) -> None:
        """Bytes on the wire with and without spill (the peers' ``bytes_*_sent`` counters), and tokens/s."""
        p = self.p
        runs: dict[str, Any] = {}
        m = p["per_replica"] * p["replicas"]
        dataset = self._dataset("coral")
        tps: dict[str, list[float]] = {"off": [], "on": []}
        with SimFleet(p["replicas"], "coral", time_scale=p["scale"]) as fleet:
            for i in range(p["repeats"]):
                for on in (False, True):
                    key = "on" if on else "off"
                    res, _ = run_slurmgen(f"spill-{key}-{i}", self.out, "coral", fleet, peers=p["peers"],
                                          max_in_flight=m, trials=1, warm=p["warm"], window=p["window"],
                                          curve_on=self.curve_on, spill=on, dataset=dataset,
                                          extra=[*CORAL_4_ARGS, f"run.peer_capacity={max(512, m)}"])
                    runs[key] = res
                    tps[key].append(res["tokens_per_s"])
        for key in runs:
            runs[key]["tokens_per_s"] = sum(tps[key]) / len(tps[key])
        wire = {k: _wire_bytes(v["peer_stats"]) for k, v in runs.items()}
        if not any(w["bytes"] for w in wire.values()):
            self.results["spill"] = {
                "status": "pending",
                "why": "the peers count no bytes on the wire (no bytes_*_sent counter in stats-peer-*.json)",
            }
            return

        per_call = {k: w["bytes"] / max(w["llm_calls"], 1) for k, w in wire.items()}
        self.results["spill"] = {
            "status": "measured", "workflow": "coral", "max_turns": 4,
            "bytes_per_llm_call_without": round(per_call["off"]), "bytes_per_llm_call_with": round(per_call["on"]),
            "ratio": round(per_call["on"] / max(per_call["off"], 1e-9), 4),
            "tokens_per_s_without": round(runs["off"]["tokens_per_s"], 1),
            "tokens_per_s_with": round(runs["on"]["tokens_per_s"], 1),
            "tokens_per_s_ratio": round(runs["on"]["tokens_per_s"] / max(runs["off"]["tokens_per_s"], 1e-9), 4),
            "tokens_per_s_repeats": {k: [round(x, 1) for x in v] for k, v in tps.items()},
            "sim_in_flight_mean": {k: round(v["sim_in_flight_mean"], 1) for k, v in runs.items()},
            "wire": wire, "note": "bytes = every bytes_*_sent counter of every peer (task messages, credits, "
                                  "holds, blob fetches) over LLM calls answered; whole run, time-boxed",
        }
        log(f"spill: {self.results['spill']['ratio']} of the bytes per LLM call, "
            f"{self.results['spill']['tokens_per_s_ratio']} of the tokens/s")

    # -- peers: Matrix itself, same replicas ---------------------------------------------------

    def peers_matrix(self) -> None:
        from .peer_matrix import section

        self.results.setdefault("peers", {})["matrix"] = section(self.p, self.out, peers=self.p["peers"],
                                                                 curve_on=self.curve_on)


class _FdWatch(Watcher):
    """Peak open files per kind of process (driver, registry, peer: found by their run directory; sim: the
    fleet's) while a scale point runs, sampled from /proc by a thread; and the peers the registry expired."""

    def __init__(self, run_dir: Path, fleet: SimFleet, period: float = 0.5) -> None:
        self.run_dir, self.fleet, self.period = run_dir, fleet, period
        self.peak: dict[str, int] = {}
        self.limit = _nofile_limit(os.getpid())
        super().__init__()

    def _run(self) -> None:
        key = str(self.run_dir)
        while not self._stop.wait(self.period):
            pids = {pid: "sim" for pid in self.fleet.pids()}
            for name in os.listdir("/proc"):
                if name.isdigit() and int(name) not in pids and key in cmdline(int(name)):
                    pids[int(name)] = classify(cmdline(int(name)))
            counts: dict[str, int] = {}
            for pid, kind in pids.items():
                try:
                    counts[kind] = max(counts.get(kind, 0), len(os.listdir(f"/proc/{pid}/fd")))
                except OSError:
                    continue
                if kind != "sim":  # the processes' own limit, raised at start (slurmgen.proc.fdlimit)
                    self.limit = max(self.limit, _nofile_limit(pid))
            for kind, n in counts.items():
                self.peak[kind] = max(self.peak.get(kind, 0), n)

    def expired(self, until: float) -> int:
        """Peers the registry expired before ``until`` (wall clock; the stop's own expiries excluded)."""
        import datetime

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


def _nofile_limit(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _scale_limit(pt: dict[str, Any], m: int) -> str:
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
def _pool_spec(fleet: Fleet) -> dict[str, Any]:
    """A runner spec's pools: each pool's replica URLs and served model."""
    pools = fleet.pools()
    return {"pools": {k: f.urls for k, f in pools.items()}, "models": {k: f.model for k, f in pools.items()}}


def _pool_entry(pool: str, reps: dict[str, list[dict[str, Any]]], replicas: int) -> dict[str, Any]:
    """One pool's figures: slurmgen's and the ideal client's, each the mean of its repeats."""

    def mean(system: str, key: str) -> float | None:
        vals = [x["by_pool"][pool][key] for x in reps[system] if x["by_pool"][pool][key] is not None]
        return sum(vals) / len(vals) if vals else None

    ours, ideal = mean("slurmgen", "tokens_per_s") or 0.0, mean("ideal", "tokens_per_s") or 0.0
    lat = {k: mean(k, "mean_latency_s") for k in reps}
    model, profile = POOL_FLEETS[pool]
    return {
        "model": model, "profile": profile, "replicas": replicas,
        "ratio": round(ours / max(ideal, 1e-9), 4),
        "slurmgen_tokens_per_s": round(ours, 1), "ideal_tokens_per_s": round(ideal, 1),
        "slurmgen_mean_latency_s": _round(lat["slurmgen"], 4), "ideal_mean_latency_s": _round(lat["ideal"], 4),
        "requests_per_s": {k: _round(mean(k, "requests_per_s"), 1) for k in reps},
        "engine_busy_frac": {k: _round(mean(k, "engine_busy_frac"), 3) for k in reps},
        "in_flight_mean": {k: _round(mean(k, "in_flight_mean"), 1) for k in reps},
        "repeats": {k: [round(x["by_pool"][pool]["tokens_per_s"], 1) for x in v] for k, v in reps.items()},
    }


def _spill_in_runs() -> str:
    """--spill as this section's runs had it (a --merge keeps the file's top-level value, from its first run)."""
    from . import harness

    return {False: "off", True: "on", None: "default"}[harness.SPILL_DEFAULT]


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def _wire_bytes(peer_stats: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    calls = 0
    for s in peer_stats:
        for k, v in s.get("received", {}).items():
            if k.startswith("bytes_"):
                by_kind[k] = by_kind.get(k, 0) + int(v)
        calls += sum(int(e.get("ok", 0)) for e in s.get("llm", {}).values())
    return {"bytes": sum(by_kind.values()), "by_kind": by_kind, "llm_calls": calls}


def _slim(res: dict[str, Any]) -> dict[str, Any]:
    drop = {"peer_stats"}
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items() if k not in drop}


def _hops_per_call(peer_stats: list[dict[str, Any]], calls: float) -> float | None:
    hops = sum(sum(v for k, v in s.get("received", {}).items() if k in ("orch", "orch_local", "orch_home"))
               for s in peer_stats)
    return round(hops / calls, 3) if calls else None


# -- table --------------------------------------------------------------------------------------


def table(r: dict[str, Any]) -> str:
    rows = table_rows(r)
    w = max(len(a) for a, _, _ in rows)
    v = max(len(b) for _, b, _ in rows)
    lines = [f"{'metric':<{w}}  {'value':<{v}}  target", "-" * (w + v + 12)]
    lines += [f"{a:<{w}}  {b:<{v}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, target) for every figure of results.json (targets printed, never asserted)."""
    rows: list[tuple[str, str, str]] = []

    def fmt(v: Any, spec: str = ".3g") -> str:
        if v is None:
            return "n/a"
        if isinstance(v, (int, float)) and spec == ".3g" and abs(v) >= 1000:
            return f"{v:.0f}"
        return format(v, spec) if isinstance(v, (int, float)) else str(v)

    for wf, s in r.get("saturation", {}).items():
        rows.append((f"saturation {wf} (slurmgen / ideal)", fmt(s["ratio"], ".3f"), ">= 0.95"))
    for pool, e in (r.get("pools") or {}).get("by_pool", {}).items():
        rows.append((f"saturation, pool {pool} ({e['model']}) (slurmgen / ideal)",
                     f"{fmt(e['ratio'], '.3f')} ({fmt(e['slurmgen_tokens_per_s'], '.0f')} / "
                     f"{fmt(e['ideal_tokens_per_s'], '.0f')} tok/s; latency {fmt(e['slurmgen_mean_latency_s'], '.2f')}"
                     f" / {fmt(e['ideal_mean_latency_s'], '.2f')} s)", ">= 0.95"))
    rows.append(("CPU per hop, 4 KiB (µs)", fmt(r.get("cpu_us_per_hop")), "<= 100"))
    rows.append(("CPU per LLM call in the client (µs)", fmt(r.get("cpu_us_per_llm_call")), "<= 300"))
    rows.append(("CPU per LLM call, all slurmgen processes (ms)"
                 + (" [CurveZMQ on]" if r.get("curve") else " [CurveZMQ off]"),
                 fmt(r.get("cpu_ms_per_llm_call_all")), "<= 1.2"))
    cc = r.get("curve_cost")
    if cc:
        rows.append(("  the same, CurveZMQ on / off (ms)", f"{fmt(cc['cpu_ms_per_llm_call_curve_on'])} / "
                     f"{fmt(cc['cpu_ms_per_llm_call_curve_off'])} ({fmt(cc['ratio_on_over_off'], '.2f')}x)", ""))
    rows.append(("requests in flight at the simulator (max)", fmt(r.get("server_max_in_flight"), "d")
                 if r.get("server_max_in_flight") is not None else "n/a", ">= 5000"))
    rows.append(("concurrent tasks in one run (max)", fmt(r.get("max_in_flight")), ">= 50000"))
    b = r.get("bytes_per_inflight_task")
    rows.append(("memory per in-flight task (KiB)", fmt(b / 1024 if b is not None else None), ""))
    for wf, e in (r.get("scale") or {}).get("workflows", {}).items():
        top = e["points"][max(e["points"], key=int)]
        rows.append((f"scale {wf}: tasks / at the simulator / CPU per call (ms)",
                     f"{top['tasks_in_flight_peak']} / {top['server_max_in_flight']:.0f} / "
                     f"{fmt(top['cpu_ms_per_llm_call'])}", ""))
        rows.append((f"scale {wf}: first limit", e["first_limit"], ""))
    base = r.get("baselines", {})
    for key, label, target in (("central_single_loop", "÷ central single loop", ""),
                               ("batch_barrier", "÷ batch barrier (100 x 4)", ">= 2"),
                               ("thread_pool_default", "÷ thread pool (3 threads)", ">= 10"),
                               ("thread_pool_best", "÷ thread pool (best)", "")):
        if key in base:
            e = base[key]
            extra = f" [{e['threads']} threads]" if "threads" in e and key == "thread_pool_best" else ""
            rows.append((f"slurmgen {label}{extra}", f"{fmt(e['ratio'], '.2f')}x ({fmt(e['tokens_per_s'], '.0f')} tok/s)",
                         target))
    for key, e in sorted(base.items()):
        if key.startswith("batch_barrier_") and key.endswith("_replicas"):
            rows.append((f"slurmgen ÷ batch barrier on {e['replicas']} replicas",
                         f"{fmt(e['ratio'], '.2f')}x ({fmt(e['tokens_per_s'], '.0f')} tok/s)", ">= 2"))
    if "batch_barrier_equal_concurrency" in base:
        e = base["batch_barrier_equal_concurrency"]
        rows.append(("slurmgen at 400 tasks ÷ batch barrier", f"{fmt(e['ratio'], '.2f')}x", ""))
    for pt in r.get("scaling", []):
        rows.append((f"scaling k={pt['peers']} peers+replicas (tokens/s, efficiency)",
                     f"{pt['tokens_per_s']:.0f}, {pt['efficiency']:.2f}" + (" CPU-bound" if pt["cpu_limited"] else ""),
                     "near-linear"))
    rows += barrier.table_rows(r)
    rows += peer_matrix.table_rows(r)
    rows += peer_tau2.table_rows(r)
    sp = r.get("spill", {})
    rows.append(("spill: bytes with / without", sp.get("status", "n/a") if "ratio" not in sp else fmt(sp["ratio"]),
                 "<= 0.8"))
    return rows


def main(argv: list[str]) -> int:
    if argv and argv[0] == "worker":
        from .runners import main as worker_main

        return worker_main(argv[argv.index("--spec") + 1])
    if argv and argv[0] == "hop-peer":
        from .micro import hop_peer_main

        return hop_peer_main(argv[1:])
    if argv and argv[0] == "tau2-runner":
        from .tau2_runner import main as tau2_runner_main

        return tau2_runner_main(argv[argv.index("--spec") + 1])
    if argv and argv[0] == "readme":
        from .readme import main as readme_main

        return readme_main(argv[1:])
    if argv and argv[0] == "client-bench":
        from .micro import client_main

        return client_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python tools/bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the CI smoke set (a few minutes)")
    ap.add_argument("--out", default="benchmarks/latest", help="output directory (results.json, *.png, runs/)")
    ap.add_argument("--only", default="", help=f"comma-separated sections of {','.join(SECTIONS)}")
    ap.add_argument("--no-curve", dest="curve", action="store_false",
                    help="CurveZMQ off in the runs (default: on, as run.curve's default; the cpu section "
                         "measures both either way)")
    ap.add_argument("--spill", choices=("off", "on", "default"), default="default",
                    help="spill.enabled in every run but the spill section's (default: the run default, on)")
    ap.add_argument("--merge", action="store_true",
                    help="start from DIR/results.json and replace only the sections run (e.g. with --only); "
                         "the file's machine stays, this run's is merged_machine")
    ap.add_argument("--peers", action="store_true", help="also the peer sections (peers_matrix, peers_tau2)")
    ap.add_argument("--keep-runs", action="store_true", help="keep DIR/runs (run directories, logs)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a parameter of the mode (e.g. --set window=60; lists as JSON)")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    only = [s for s in args.only.split(",") if s] or [s for s in SECTIONS if not s.startswith(OPT_IN)]
    only += [s for s in SECTIONS if args.peers and s.startswith(OPT_IN) and s not in only]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    from . import harness

    harness.SPILL_DEFAULT = {"off": False, "on": True, "default": None}[args.spill]
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # leave through the finally/with blocks
    bench = Bench(out, args.quick, args.curve)
    bench.results["spill_in_runs"] = args.spill
    previous = out / "results.json"
    if args.merge and previous.exists():
        old = json.loads(previous.read_text())
        fresh = {k: v for k, v in bench.results.items() if k in ("params", "mode", "targets")}
        fresh["merged_machine"] = bench.results["machine"]  # the other sections ran on the file's machine
        bench.results.update({k: v for k, v in old.items() if k not in ("section_errors",)})
        bench.results.update(fresh)
        bench.results.setdefault("section_errors", {})
        for name in only:
            bench.results["section_errors"].pop(name, None)
        bench.results["merged_sections"] = only
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in bench.p:
            ap.error(f"--set {key}: unknown parameter; known: {', '.join(sorted(bench.p))}")
        bench.p[key] = json.loads(value)
    t_start = time.monotonic()
    log(f"mode={'quick' if args.quick else 'full'} out={out} load={loadavg()}")
    for name in SECTIONS:
        if name not in only:
            continue
        t0 = time.monotonic()
        bench.results["load_avg"][f"{name}_start"] = loadavg()
        try:
            getattr(bench, name)()
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            log(f"section {name} failed: {exc!r}")
            bench.results["section_errors"][name] = "".join(traceback.format_exception(exc))[-3000:]
        bench.results["section_s"][name] = round(time.monotonic() - t0, 1)
        bench.save()
    bench.results["load_avg"]["end"] = loadavg()
    bench.results["total_s"] = round(time.monotonic() - t_start, 1)
    from .plots import plot_all

    bench.results["plots"] = plot_all(bench.results, out)
    bench.save()
    if not args.keep_runs:
        import shutil

        shutil.rmtree(out / "runs", ignore_errors=True)
    print(table(bench.results))
    print(f"\nresults: {out / 'results.json'}; {bench.results['total_s']} s; load average {loadavg()}")
    return 0
