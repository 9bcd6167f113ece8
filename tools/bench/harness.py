"""Running one system under load for a measured window: slurmgen itself, or a runner process."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import msgspec

from slurmgen.config.pools import key as pool_key
from slurmgen.runtime.stats import read_all

from .common import PYTHON, REPO, Fleet, Sampler, _die_with_parent, log, scrape

BENCH_PY = str(Path(__file__).resolve().parent.parent / "bench.py")


def wait_idle(fleet: Fleet, timeout: float = 60.0) -> None:
    """Until no replica holds a request (the last load generator's requests are aborted or done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(scrape(u).get("vllm:num_requests_running", 0) + scrape(u).get("vllm:num_requests_waiting", 0) == 0
               for u in fleet.urls):
            return
        time.sleep(0.2)
    log("warning: the replicas still hold requests")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 40.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} did not stop in {timeout:.0f} s: killing it")
            proc.kill()
            proc.wait()


def measure(proc: subprocess.Popen, fleet: Fleet, *, warm: float, window: float, timebox: bool = True,
            start_timeout: float = 180.0, on_tick: Callable[[], None] | None = None,
            stop_sig: int = signal.SIGINT, period: float = 0.25, pss_every: int = 0
            ) -> tuple[dict[str, Any], Sampler]:
    """Sample while ``proc`` runs; measure ``[first activity + warm, + window]`` (time-boxed: then stop it),
    or, for a run to completion, the window between 10 % and 90 % of its requests. ``pss_every``: read
    the tree's PSS every this many samples (it costs the kernel a walk of every mapping)."""
    sampler = Sampler(fleet, root_pid=proc.pid, period=period, pss_every=pss_every)
    ran_out = False
    with sampler:
        deadline = time.monotonic() + start_timeout
        t_first = None
        while t_first is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(period)
            t_first = sampler.first_activity()
            if on_tick:
                on_tick()
        if t_first is None:
            stop_process(proc, stop_sig)
            raise RuntimeError(f"no load reached the simulator (exit code {proc.returncode})")
        t_end = t_first + warm + window
        while proc.poll() is None and (not timebox or time.monotonic() < t_end):
            time.sleep(period)
            if on_tick:
                on_tick()
        if proc.poll() is not None:
            ran_out = timebox
        else:
            while sampler.samples[-1].t < t_end and time.monotonic() < t_end + 5 * period:
                time.sleep(period / 5)  # a sample past the window while the process still lives
            stop_process(proc, stop_sig)
    if timebox:
        t0 = t_first + warm
        t1 = min(t_end, sampler.samples[-1].t)
    else:
        t0, t1 = _quantile_window(sampler, 0.1, 0.9)
    return _window_figures(sampler, fleet, t0, t1, ran_out=ran_out, exit_code=proc.returncode,
                           startup_s=round(t_first - sampler.samples[0].t, 2)), sampler


def _window_figures(sampler: Sampler, fleet: Fleet, t0: float, t1: float, *, ran_out: bool, exit_code: int | None,
                    startup_s: float) -> dict[str, Any]:
    """The figures of the window [t0, t1]: the sampler's, the run's, and those derived from them."""
    result: dict[str, Any] = dict(sampler.window(t0, t1))
    result["t_window_end"] = t1
    result["ran_out"] = ran_out
    result["stale_scrapes"] = sampler.stale
    result["exit_code"] = exit_code
    result["server_max_in_flight"] = sampler.max_server_in_flight()
    result["startup_s"] = startup_s
    result["tokens_per_request"] = result["tokens"] / max(result["requests"], 1)
    wall = max(t1 - t0, 1e-9)
    result["cores_busy"] = round((sum(result["cpu_s_by_kind"].values()) + result["sim_cpu_s"]) / wall, 2)
    result["scale"] = fleet.time_scale
    result["engine_busy_frac"] = round(result["engine_busy_s"] / (wall * fleet.time_scale * fleet.n), 3) \
        if fleet.time_scale > 0 else None
    return result


def _quantile_window(sampler: Sampler, lo: float, hi: float) -> tuple[float, float]:
    base, last = sampler.samples[0].requests, sampler.samples[-1].requests
    total = last - base
    t0 = next((s.t for s in sampler.samples if s.requests - base >= lo * total), sampler.samples[0].t)
    t1 = next((s.t for s in sampler.samples if s.requests - base >= hi * total), sampler.samples[-1].t)
    return t0, t1


# -- slurmgen -----------------------------------------------------------------------------


def slurmgen_argv(workflow: str, run_dir: Path, fleet: Fleet, *, peers: int, max_in_flight: int, trials: int,
                  curve_on: bool, extra: list[str] | None = None, spill: bool | None = None,
                  dataset: str = "") -> list[str]:
    """``python -m slurmgen`` on the fleet's pools; ``spill``: spill.enabled (None: the config's default)."""
    extra = [*(extra or []), *([] if spill is None else [f"spill.enabled={'true' if spill else 'false'}"])]
    if workflow == "tau2":  # the fleets are simulators behind hosted pools: their scripts need the task id line
        extra = ["workflow.task_id_in_user_prompt=true", *extra]
    return [PYTHON, "-m", "slurmgen", f"workflow={workflow}", f"run.dir={run_dir}", *pool_args(fleet),
            f"run.peers={peers}", f"run.max_in_flight={max_in_flight}",
            f"run.trials={trials}", f"run.curve={'true' if curve_on else 'false'}", "run.progress=false",
            "run.drain_s=0", "run.lease_s=600", *([f"dataset.path={dataset}"] if dataset else []), *(extra or [])]


def pool_args(fleet: Fleet) -> list[str]:
    """Each pool of the fleet as a hosted (openai) pool at its replicas' URLs, serving its model."""
    out = []
    for pool, f in fleet.pools().items():
        k = pool_key(pool)
        out += [f"{k}.backend=openai", f"{k}.urls=[{','.join(f.urls)}]", f"{k}.model={f.model}"]
    return out


def run_slurmgen(name: str, out: Path, workflow: str, fleet: Fleet, *, peers: int, max_in_flight: int,
                 trials: int, warm: float, window: float, timebox: bool = True, curve_on: bool = False,
                 extra: list[str] | None = None, watch_stats: bool = False, spill: bool | None = None,
                 dataset: str = "") -> tuple[dict[str, Any], Sampler]:
    run_dir = out / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    argv = slurmgen_argv(workflow, run_dir, fleet, peers=peers, max_in_flight=max_in_flight, trials=trials,
                         curve_on=curve_on, extra=extra, spill=spill, dataset=dataset)
    logf = open(out / "runs" / f"{name}.out", "wb") if (out / "runs").exists() else None
    if logf is None:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        logf = open(out / "runs" / f"{name}.out", "wb")
    log(f"{name}: slurmgen {workflow} peers={peers} max_in_flight={max_in_flight} scale={fleet.time_scale} "
        f"replicas={fleet.n}")
    wait_idle(fleet)
    proc = subprocess.Popen(argv, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    peak = {"in_flight": 0}

    def tick() -> None:
        if watch_stats:
            peak["in_flight"] = max(peak["in_flight"], peers_in_flight(run_dir))

    try:
        # SIGTERM, not SIGINT: a shell's background job ignores SIGINT, and so would the driver
        result, sampler = measure(proc, fleet, warm=warm, window=window, timebox=timebox, on_tick=tick,
                                  stop_sig=signal.SIGTERM)
    finally:
        logf.close()
    result["system"] = "slurmgen"
    result["peers"], result["max_in_flight"], result["replicas"] = peers, max_in_flight, fleet.n
    result["peer_stats"] = read_peer_stats(run_dir)
    if watch_stats:
        result["tasks_in_flight_peak"] = max(peak["in_flight"], sum(
            s.get("in_flight", 0) for s in result["peer_stats"]))
    log(f"{name}: {result['tokens_per_s']:.0f} tokens/s over {result['window_s']} s "
        f"(sim in flight {result['sim_in_flight_mean']:.0f}, cores busy {result['cores_busy']})")
    return result, sampler


def read_peer_stats(run_dir: Path) -> list[dict[str, Any]]:
    """The peers' stats files (slurmgen.runtime.stats.PeerStats), as plain JSON for the results."""
    return [msgspec.to_builtins(s) for s in read_all(run_dir / "state")]


def peers_in_flight(run_dir: Path) -> int:
    return sum(s.in_flight for s in read_all(run_dir / "state"))


# -- runner processes (ideal client, baselines) ---------------------------------------------


def run_worker(name: str, spec: dict[str, Any], fleet: Fleet, *, warm: float, window: float,
               timebox: bool = True) -> tuple[dict[str, Any], Sampler]:
    log(f"{name}: {spec['kind']} concurrency={spec.get('concurrency')} scale={fleet.time_scale} replicas={fleet.n}")
    wait_idle(fleet)
    errf = tempfile.TemporaryFile()
    proc = subprocess.Popen([PYTHON, BENCH_PY, "worker", "--spec", json.dumps(spec)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=errf, preexec_fn=_die_with_parent)
    try:
        result, sampler = measure(proc, fleet, warm=warm, window=window, timebox=timebox, stop_sig=signal.SIGKILL)
    except RuntimeError as exc:
        proc.wait()
        errf.seek(0)
        raise RuntimeError(f"{name}: {exc}: {errf.read().decode(errors='replace')[-2000:]}") from None
    out = proc.stdout.read()  # type: ignore[union-attr]  # stdout=PIPE: never None
    proc.wait()
    errf.seek(0)
    err = errf.read()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"{name} failed ({proc.returncode}): {err.decode()[-2000:]}")
    lines = out.decode().strip().splitlines()
    if lines:
        result["worker"] = json.loads(lines[-1])
    result["system"] = str(spec["kind"])
    result["concurrency"] = spec.get("concurrency")
    log(f"{name}: {result['tokens_per_s']:.0f} tokens/s over {result['window_s']} s "
        f"(sim in flight {result['sim_in_flight_mean']:.0f}, cores busy {result['cores_busy']})")
    return result, sampler
