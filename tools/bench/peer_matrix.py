"""Matrix itself (facebookresearch/matrix, ``fair-matrix``) beside slurmgen, on the same simulated replicas.

Matrix is installed in its own venv (``tools/matrix_env.sh``, built on first use) and
driven through its documented entry points only: a local Ray head (``ray start --head``,
as Matrix's ``ray_head_job`` does, here in one process tree, with ``--include-dashboard=false``:
Ray then runs ``dashboard.py`` alone, without the ten head-module processes that Matrix's
head starts, which leaves their CPU out of Matrix's figures, in its favour, and lets Ray
start within its Ray Client server's 30 s on a busy machine);
the driver connects through ``RAY_ADDRESS``, Matrix's ``ray job submit`` path) and its Hydra agent runner
``python -m matrix.agents.p2p_agents`` with its own ``coral_mmlu_pro`` experiment
(``coral_sequential``: teacher, extractor, matcher, student, extractor, matcher). The
experiment config the bench writes only overrides values:

- ``dataset``: Matrix's ``CoralDatasetLoader`` on the bench's Coral JSONL (MMLU-Pro's
  schema, read with ``load_dataset("json")``: no hub access);
- ``resources.*._target_``: ``matrix_side/slurmgen_matrix_llm.py:UrlLLMResourceClient``,
  Matrix's ``LLMResourceClient`` pointed at the simulator's URLs instead of a Ray Serve
  app (Matrix has no base-URL option: ``LLMResourceClient.__init__`` reads the Serve
  deployment through ``Cli.get_app_metadata``); sticky routing on, as slurmgen's;
- ``agents.*.system_prompt``: slurmgen's Coral prompt files, whose marker line lets the
  simulator script Coral replies, so both systems see the same kind of conversation;
- ``orchestrator.max_turns``, ``max_concurrent_tasks``, ``output.path``.

Both systems then run one after the other against one ``SimFleet``: each system on CPU 0,
the replicas on CPU 1. slurmgen inherits CPU 0 from the bench thread that starts it;
Ray starts on every CPU (on one shared core its Ray Client server's fixed 30 s wait for
the raylet ran out) and its whole tree is pinned to CPU 0 once the head is up, before
the window. Figures come from the replicas' counters in the measured window (tokens/s,
LLM calls/s, requests in flight) and from /proc over every process of each system's
tree (CPU, RSS): for Matrix that is bash, the Ray head (``ray start``, GCS, raylet,
``dashboard.py``, the dashboard agent, runtime-env agent, log and autoscaler monitors, Ray Client server),
Ray's workers (the actors) and the driver.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .common import (
    REPO,
    SimFleet,
    Watcher,
    _die_with_parent,
    classify,
    cmdline,
    descendants,
    log,
)
from .harness import measure, run_slurmgen, stop_process, wait_idle

ENV_SCRIPT = REPO / "tools" / "matrix_env.sh"
SIDE = Path(__file__).resolve().parent / "matrix_side"
CORAL_PROMPTS = REPO / "agents" / "coral" / "prompts"



def venv_dir() -> Path:
    return Path(os.environ.get("SLURMGEN_MATRIX_VENV") or Path.home() / ".cache" / "slurmgen" / "matrix-venv")


def ensure_venv() -> Path:
    """Matrix's venv, built by tools/matrix_env.sh on first use (idempotent, flock-serialised)."""
    venv = venv_dir()
    subprocess.run(["bash", str(ENV_SCRIPT), str(venv)], check=True)
    return venv


def served_model(url: str) -> str:
    """The model name a replica serves (``GET /v1/models``), as slurmgen's client asks for it."""
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as resp:
        return str(json.load(resp)["data"][0]["id"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Matrix's experiment config ---------------------------------------------------------------


def experiment_config(conf_dir: Path, *, urls: list[str], dataset: str, rows: int, concurrency: int,
                      max_turns: int, output: Path, model: str) -> str:
    """Write ``conf_dir/slurmgen_coral.yaml`` (JSON is YAML): Matrix's coral_mmlu_pro with values overridden."""
    agent = (CORAL_PROMPTS / "agent.txt").read_text().strip()
    extractor = (CORAL_PROMPTS / "extractor.txt").read_text().strip()

    def llm(service: str) -> dict[str, Any]:
        return {"_target_": "slurmgen_matrix_llm.UrlLLMResourceClient", "urls": urls, "model": model,
                "exec_params": {"sticky_routing_prefix": f"{service}_"}}

    cfg = {
        "defaults": ["coral_mmlu_pro", "_self_"],
        "max_concurrent_tasks": concurrency,
        "dataset": {"name": "json", "split": "train", "data_files": dataset, "cut_off": rows},
        "orchestrator": {"max_turns": max_turns},
        "output": {"path": str(output)},
        "resources": {"teacher_llm": llm("teacher"), "student_llm": llm("student"),
                      "extractor_llm": llm("extractor")},
        "agents": {"teacher": {"system_prompt": agent}, "student": {"system_prompt": agent},
                   "answer_extractor": {"system_prompt": extractor}},
    }
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "slurmgen_coral.yaml").write_text(json.dumps(cfg, indent=1))
    return "slurmgen_coral"


LAUNCHER = r"""
set -u
DRIVER=""
HEAD=""
trap 'kill -TERM $DRIVER $HEAD 2>/dev/null; wait; exit 143' TERM INT
# Ray's head; up to 3 attempts: under heavy load its Ray Client server can give up waiting
# for the raylet (a fixed 30 s) and `ray start --block` then stops every process it started
for attempt in 1 2 3; do
    ray start --head --block --disable-usage-stats --node-ip-address=127.0.0.1 --port="$RAY_PORT" \
        --ray-client-server-port="$CLIENT_PORT" --include-dashboard=false --num-cpus="$RAY_CPUS" \
        --num-gpus=0 --temp-dir="$RAY_TMP" > "ray-head-$attempt.log" 2>&1 &
    HEAD=$!
    for _ in $(seq 900); do
        grep -q "Ray runtime started" "ray-head-$attempt.log" && break
        kill -0 $HEAD 2>/dev/null || break
        sleep 0.2
    done
    sleep 3
    kill -0 $HEAD 2>/dev/null && break
    echo "ray start attempt $attempt failed: ray-head-$attempt.log" >&2
    wait $HEAD
    HEAD=""
done
[ -n "$HEAD" ] || exit 3
echo started > ray-ready
RAY_ADDRESS="127.0.0.1:$RAY_PORT" python -m matrix.agents.p2p_agents --config-dir="$CONF_DIR" \
    --config-name="$CONF_NAME" hydra.run.dir=. hydra.output_subdir=null > driver.log 2>&1 &
DRIVER=$!
wait $DRIVER
rc=$?
kill -TERM $HEAD 2>/dev/null
wait $HEAD
exit $rc
"""


@contextmanager
def pinned(cpus: list[int]) -> Iterator[None]:
    """The calling thread on ``cpus`` (children started meanwhile inherit it); restored on exit."""
    before = os.sched_getaffinity(0)
    usable = set(cpus) & before or before
    os.sched_setaffinity(0, usable)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class AffinityWatch(Watcher):
    """Records, every second, the CPU affinity of each process below this one (the replicas aside)."""

    def __init__(self, exclude: list[int], classify: Any) -> None:
        self.exclude, self.classify = set(exclude), classify
        self.seen: dict[str, list[int]] = {}
        super().__init__()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(1.0):
            for pid in descendants(me):
                if pid == me or pid in self.exclude:
                    continue
                try:
                    cpus = sorted(os.sched_getaffinity(pid))
                except OSError:
                    continue
                kind = self.classify(cmdline(pid))
                self.seen[kind] = sorted(set(self.seen.get(kind, [])) | set(cpus))


def _set_affinity(pid: int, cpus: list[int]) -> None:
    try:
        os.sched_setaffinity(pid, set(cpus))
    except OSError:  # gone, or a CPU not in this cgroup
        pass


def pin_fleet(fleet: SimFleet, cpus: list[int]) -> dict[int, list[int]]:
    out = {}
    for pid in fleet.pids():
        try:
            os.sched_setaffinity(pid, set(cpus) & os.sched_getaffinity(0) or os.sched_getaffinity(0))
            out[pid] = sorted(os.sched_getaffinity(pid))
        except OSError:
            pass
    return out


def classify_matrix(cmd: str) -> str:
    """The kind of one process of Matrix's tree, from its command line (Ray retitles its workers)."""
    if cmd.startswith("ray::"):
        name = cmd[5:].split()[0].split(".")[0]
        return {"DashboardAgent": "dashboard_agent", "RuntimeEnvAgent": "runtime_env_agent",
                "IDLE": "worker_idle"}.get(name, "actor:" + name)
    if cmd.startswith(("bash", "/bin/bash")):
        return "launcher"  # its -c script names everything below: first
    rules = (("matrix.agents.p2p_agents", "driver"), ("default_worker", "worker_idle"), ("gcs_server", "gcs"),
             ("raylet/raylet", "raylet"),
             ("ray-dashboard-", "dashboard"), ("resource_tracker", "dashboard"),
             ("ray.util.client.server", "ray_client_server"), ("dashboard/agent.py", "dashboard_agent"),
             ("dashboard.py", "dashboard"),
             ("runtime_env/agent", "runtime_env_agent"), ("log_monitor", "log_monitor"),
             ("monitor.py", "autoscaler_monitor"), ("ray start", "ray_start"))
    for needle, kind in rules:
        if needle in cmd:
            return kind
    return "other"


def _kinds_cpu(sampler: Any, cmds: dict[int, str], t0: float, t1: float) -> tuple[dict[str, float], dict[int, str]]:
    a, b = sampler.at(t0), sampler.at(t1)
    kinds: dict[int, str] = {}
    cpu: dict[str, float] = {}
    for pid, c in b.cpu.items():
        kind = kinds.setdefault(pid, classify_matrix(cmds.get(pid, "")))
        cpu[kind] = cpu.get(kind, 0.0) + c - a.cpu.get(pid, 0.0)
    return {k: round(v, 4) for k, v in sorted(cpu.items())}, kinds


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


class TreeTick:
    """Called by ``measure`` every period: names each process of Matrix's tree, pins it once Ray is up,
    and counts the output rows (tasks finished)."""

    def __init__(self, proc: subprocess.Popen, run_dir: Path, output: Path, cpus: list[int]) -> None:
        self.proc, self.run_dir, self.output, self.cpus = proc, run_dir, output, cpus
        self.cmds: dict[int, str] = {}
        self.pinned: set[int] = set()
        self.done: list[tuple[float, int]] = []

    def __call__(self) -> None:
        ready = (self.run_dir / "ray-ready").exists()
        for pid in descendants(self.proc.pid):
            self.cmds[pid] = cmdline(pid) or self.cmds.get(pid, "")  # Ray retitles a worker holding an actor
            if ready and pid not in self.pinned:
                # Ray's start on one shared core can outlast its Ray Client server's fixed 30 s wait
                # for the raylet (`ray start --block` then stops everything): pinned once it is up
                _set_affinity(pid, self.cpus)
                self.pinned.add(pid)
        self.done.append((time.monotonic(), count_lines(self.output)))


def _matrix_env(venv: Path, run_dir: Path, conf_name: str, ray_tmp: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "PYTHONPATH": str(SIDE),
           "VIRTUAL_ENV": str(venv), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "RAY_PORT": str(free_port()), "CLIENT_PORT": str(free_port()), "RAY_CPUS": "16", "RAY_TMP": str(ray_tmp),
           "CONF_DIR": str(run_dir / "conf"), "CONF_NAME": conf_name, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return env


def _launch(run_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    every = os.sched_getaffinity(os.getpid())  # the process's, not the calling (pinned) thread's

    def unpinned() -> None:  # Ray starts on every CPU, then TreeTick pins its tree
        _die_with_parent()
        os.sched_setaffinity(0, every)

    return subprocess.Popen(["bash", "-c", LAUNCHER], cwd=run_dir, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(run_dir / "launcher.err", "wb"), preexec_fn=unpinned, start_new_session=True)


def run_matrix(name: str, out: Path, fleet: SimFleet, *, dataset: str, rows: int, concurrency: int,
               max_turns: int, warm: float, window: float, cpus: list[int]) -> dict[str, Any]:
    venv = ensure_venv()
    run_dir = out / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    output = run_dir / "matrix_coral.jsonl"
    conf_name = experiment_config(run_dir / "conf", urls=fleet.urls, dataset=dataset, rows=rows,
                                  concurrency=concurrency, max_turns=max_turns, output=output,
                                  model=served_model(fleet.urls[0]))
    ray_tmp = Path(f"/tmp/sgray-{os.getpid()}-{int(time.time())}")  # Ray's socket paths must stay short
    log(f"{name}: Matrix coral concurrency={concurrency} max_turns={max_turns} replicas={fleet.n} cpus={cpus}")
    wait_idle(fleet)
    with pinned(cpus):
        proc = _launch(run_dir, _matrix_env(venv, run_dir, conf_name, ray_tmp))
        tick = TreeTick(proc, run_dir, output, cpus)
        try:
            with AffinityWatch(fleet.pids(), classify_matrix) as watch:
                result, sampler = measure(proc, fleet, warm=warm, window=window, timebox=True, on_tick=tick,
                                          stop_sig=signal.SIGTERM, start_timeout=480.0)
        except BaseException:
            _reap(proc, set(tick.cmds))
            log(f"{name}: Matrix's logs: {run_dir} (driver.log, ray-head.log), Ray's: {ray_tmp}/session_latest/logs")
            raise
        _reap(proc, set(tick.cmds))
        shutil.rmtree(ray_tmp, ignore_errors=True)
    result.update(_matrix_figures(result, sampler, tick, run_dir))
    result["affinity"] = watch.seen  # CPUs seen per kind over the run (Ray's start before pinning included)
    log(f"{name}: {result['tokens_per_s']:.0f} tokens/s, {result['requests_per_s']:.1f} calls/s, "
        f"{result['cpu_ms_per_llm_call']:.2f} CPU ms per call, {result['tasks_finished']} tasks finished")
    return result


def _matrix_figures(result: dict[str, Any], sampler: Any, tick: TreeTick, run_dir: Path) -> dict[str, Any]:
    t0, t1 = float(result["t_window_end"]) - float(result["window_s"]), float(result["t_window_end"])
    by_kind, kinds = _kinds_cpu(sampler, tick.cmds, t0, t1)
    result["cpu_s_by_kind"] = by_kind
    return {"cpu_s_by_kind": by_kind, **_common_figures(result, sampler, t1, kinds=None),
            "tasks_finished": tick.done[-1][1] if tick.done else 0,
            "tasks_finished_in_window": _in_window(tick.done, t0, t1), "system": "matrix",
            "processes": _process_census(kinds), "driver_log_tail": _tail(run_dir / "driver.log")}


def _reap(proc: subprocess.Popen, seen: set[int]) -> None:
    """Stop the launcher, then any process of its tree still alive (by pid: only ours)."""
    stop_process(proc, signal.SIGTERM, timeout=30.0)
    deadline = time.monotonic() + 10
    alive = [p for p in seen if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if alive:
        log(f"matrix: killed {len(alive)} leftover processes of its tree")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return False


def _common_figures(result: dict[str, Any], sampler: Any, t1: float, kinds: tuple[str, ...] | None) -> dict[str, Any]:
    cpu_s = sum(result["cpu_s_by_kind"].values())
    calls = max(float(result["requests"]), 1.0)
    peak = max((sum(r for pid, r in s.rss.items() if kinds is None or s.kind.get(pid) in kinds)
                for s in sampler.samples if s.t <= t1), default=0)
    t_first = sampler.samples[0].t + float(result["startup_s"])
    active = sampler.window(t_first, t1)  # from the first request on, warm-up included
    active_cpu = sum(active["cpu_s_by_kind"].values())
    return {"cpu_s": round(cpu_s, 3), "cpu_ms_per_llm_call": round(1000 * cpu_s / calls, 3),
            "cores_busy_system": round(cpu_s / max(float(result["window_s"]), 1e-9), 3),
            "peak_rss_mb": round(peak / 2**20, 1), "llm_calls_per_s": round(float(result["requests_per_s"]), 2),
            "active": {"s": active["window_s"], "llm_calls": active["requests"], "cpu_s": round(active_cpu, 3),
                       "cpu_ms_per_llm_call": round(1000 * active_cpu / max(active["requests"], 1.0), 3),
                       "tokens_per_s": round(active["tokens_per_s"], 1),
                       "llm_calls_per_s": round(active["requests_per_s"], 2)}}


def _in_window(series: list[tuple[float, int]], t0: float, t1: float) -> int:
    def at(t: float) -> int:
        return next((n for ts, n in series if ts >= t), series[-1][1] if series else 0)
    return at(t1) - at(t0)


def _process_census(kinds: dict[int, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds.values():
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# -- slurmgen, same fleet, same pinning --------------------------------------------------------


def run_slurmgen_side(name: str, out: Path, fleet: SimFleet, *, dataset: str, concurrency: int, peers: int,
                      warm: float, window: float, cpus: list[int], curve_on: bool, spill: bool | None
                      ) -> dict[str, Any]:
    with pinned(cpus), AffinityWatch(fleet.pids(), classify) as watch:
        result, sampler = run_slurmgen(name, out, "coral", fleet, peers=peers, max_in_flight=concurrency, trials=1,
                                       warm=warm, window=window, curve_on=curve_on, spill=spill, dataset=dataset,
                                       extra=["workflow.max_turns=4"])
    t1 = float(result["t_window_end"])
    result.update(_common_figures(result, sampler, t1, kinds=None))
    result["tasks_finished"] = sum(int(s.get("written", 0)) for s in result.get("peer_stats", []))
    result["affinity"] = watch.seen
    result.pop("peer_stats", None)
    return result
