"""Shared plumbing of the benchmark: simulator replicas, /metrics scraping, /proc sampling.

Nothing here re-implements slurmgen: the simulator is ``python -m slurmgen.sim``, the
runs are ``python -m slurmgen``; this module only starts them and watches them.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

WORKFLOW_SCRIPTS = {
    "nr": "slurmgen.agents.nr.script:respond",
    "coral": "slurmgen.agents.coral.script:respond",
    "tau2": "slurmgen.agents.tau2.script:respond",
    "tau2_oracle": "slurmgen.agents.tau2.script:oracle",
}


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies, however it dies (Linux PDEATHSIG)."""
    try:
        from slurmgen.proc.lifeline import die_with_parent

        die_with_parent()
    except Exception:  # noqa: BLE001 - best effort: not every platform has a lifeline
        pass


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- simulator replicas ------------------------------------------------------------


@dataclass
class Sim:
    proc: subprocess.Popen[bytes]
    url: str


DEFAULT_POOL = "default"  # slurmgen.config.pools.DEFAULT: the pool `llm`


class SimFleet:
    """``n`` replicas of ``python -m slurmgen.sim`` serving ``model`` on free ports; a context manager.

    One fleet is one LLM pool (the default one): ``pools()`` says so, as ``SimFleets`` names several.
    """

    def __init__(self, n: int, workflow: str, *, profile: str = "a100-llama3.1-8b", time_scale: float = 20.0,
                 seed: int = 0, model: str = "sim-llama-3.1-8b") -> None:
        self.n, self.workflow, self.profile, self.time_scale, self.seed = n, workflow, profile, time_scale, seed
        self.model = model
        self.sims: list[Sim] = []

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.sims]

    def pools(self) -> dict[str, SimFleet]:
        return {DEFAULT_POOL: self}

    def __enter__(self) -> SimFleet:
        procs = []
        for i in range(self.n):
            argv = [PYTHON, "-m", "slurmgen.sim", "--name", f"bench-sim-{i}", "--port", "0", "--model", self.model,
                    "--script", WORKFLOW_SCRIPTS[self.workflow], "--profile", self.profile,
                    "--time-scale", str(self.time_scale), "--seed", str(self.seed + i)]
            procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          cwd=REPO, start_new_session=True, preexec_fn=_die_with_parent))
        for p in procs:
            line = p.stdout.readline().decode()  # type: ignore[union-attr]
            m = re.search(r"listening on (http://\S+)", line)
            if not m:
                self.sims.append(Sim(p, ""))
                self.__exit__()
                raise RuntimeError(f"simulator did not start: {line!r}")
            self.sims.append(Sim(p, m.group(1)))
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self.sims:
            if s.proc.poll() is None:
                s.proc.terminate()
        for s in self.sims:
            try:
                s.proc.wait(10)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
        self.sims = []

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.sims]


class SimFleets:
    """One ``SimFleet`` per LLM pool (pool name -> fleet), started, watched and measured as one fleet.

    The fleets share one time scale, so that the harness's engine-busy fraction means the same thing
    for all of them.
    """

    def __init__(self, fleets: dict[str, SimFleet]) -> None:
        scales = {f.time_scale for f in fleets.values()}
        if len(scales) != 1:
            raise ValueError(f"the pools' fleets must share one time scale, not {sorted(scales)}")
        self.fleets = fleets
        self.time_scale = scales.pop()
        self._stack = ExitStack()

    @property
    def n(self) -> int:
        return sum(f.n for f in self.fleets.values())

    @property
    def urls(self) -> list[str]:
        return [u for f in self.fleets.values() for u in f.urls]

    def pools(self) -> dict[str, SimFleet]:
        return dict(self.fleets)

    def pids(self) -> list[int]:
        return [pid for f in self.fleets.values() for pid in f.pids()]

    def __enter__(self) -> SimFleets:
        with ExitStack() as stack:
            for f in self.fleets.values():
                stack.enter_context(f)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


Fleet = SimFleet | SimFleets

_METRIC = re.compile(r"^(vllm:[a-z0-9_]+|slurmgen_sim:[a-z0-9_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$")


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """Sum of each ``vllm:*`` / ``slurmgen_sim:*`` sample of one replica's /metrics (histogram buckets
    skipped; their ``_sum`` and ``_count`` kept)."""
    with urllib.request.urlopen(url + "/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m and not m.group(1).endswith("_bucket"):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


# -- datasets ------------------------------------------------------------------------

DATASET_SEEDS = {"nr": 20250211, "coral": 20250417}  # the built-in datasets' seeds


def bench_dataset(workflow: str, rows: int) -> Path:
    """A JSONL of ``rows`` distinct rows from the workflow's own generator (cached).

    Every system of a comparison reads the same file in the same order, one trial per
    row, so that the request streams they send in a window are alike (with trials, a
    slurmgen origin issues all trials of a row back to back: a far less varied stream).
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "slurmgen" / "bench"
    path = base / f"{workflow}-{rows}-{DATASET_SEEDS[workflow]}.jsonl"
    if path.exists():
        return path
    if workflow == "nr":
        from slurmgen.agents.nr.corpus import make_corpus

        data = make_corpus(rows, DATASET_SEEDS[workflow])
    else:
        from slurmgen.agents.coral.questions import make_questions

        data = make_questions(rows, DATASET_SEEDS[workflow])
    import msgspec

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in data))
    os.replace(tmp, path)
    return path


# -- /proc ---------------------------------------------------------------------------


def proc_cpu_rss(pid: int) -> tuple[float, int] | None:
    """(user+system CPU seconds, RSS bytes) of one process; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    # fields[0] is state (field 3); utime = field 14, stime = 15, rss = 24 (1-based)
    utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
    return (utime + stime) / TICK, rss * PAGE


def proc_pss(pid: int) -> int | None:
    """Proportional set size of one process (its shared pages divided among their users)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def descendants(root: int) -> list[int]:
    kids = children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


SLURMGEN_KINDS = ("driver", "registry", "peer", "toolpool")  # every process a slurmgen run starts but the LLMs


def classify(cmd: str) -> str:
    if "slurmgen.runtime.peer" in cmd:
        return "peer"
    if "slurmgen.registry.server" in cmd:
        return "registry"
    if "slurmgen.sim" in cmd:
        return "sim"
    if "slurmgen.launchers.service" in cmd:
        return "service"
    if "slurmgen.toolpool" in cmd:
        return "toolpool"
    if "-m slurmgen" in cmd:
        return "driver"
    if "bench.py worker" in cmd:
        return "runner"
    return "other"


# -- the sampler ----------------------------------------------------------------------


@dataclass
class PoolSample:
    """One pool's replicas summed: the counters a per-pool window needs."""

    tokens: float = 0.0
    gen_tokens: float = 0.0
    requests: float = 0.0
    in_flight: float = 0.0  # running + waiting
    busy_s: float = 0.0
    latency_sum_s: float = 0.0  # vllm:e2e_request_latency_seconds_sum: arrival to last token, wall seconds
    latency_count: float = 0.0

    def add(self, got: dict[str, float]) -> None:
        self.tokens += got.get("vllm:prompt_tokens_total", 0.0) + got.get("vllm:generation_tokens_total", 0.0)
        self.gen_tokens += got.get("vllm:generation_tokens_total", 0.0)
        self.requests += got.get("vllm:request_success_total", 0.0)
        self.in_flight += got.get("vllm:num_requests_running", 0.0) + got.get("vllm:num_requests_waiting", 0.0)
        self.busy_s += got.get("slurmgen_sim:engine_busy_seconds_total", 0.0)
        self.latency_sum_s += got.get("vllm:e2e_request_latency_seconds_sum", 0.0)
        self.latency_count += got.get("vllm:e2e_request_latency_seconds_count", 0.0)


@dataclass
class Sample:
    t: float
    tokens: float  # prompt + generation tokens counted by every replica
    gen_tokens: float  # generation tokens alone
    requests: float  # finished requests of every replica
    running: float
    waiting: float
    busy_s: float  # modelled engine-busy seconds of every replica
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds (watched tree)
    rss: dict[int, int] = field(default_factory=dict)  # pid -> RSS bytes
    kind: dict[int, str] = field(default_factory=dict)
    sim_cpu: float = 0.0
    sim_rss: int = 0
    pools: dict[str, PoolSample] = field(default_factory=dict)  # pool -> its replicas (fleet.pools())
    pss: int = 0  # PSS bytes summed over the watched tree (shared pages once); 0 = not read in this sample


class Sampler:
    """Samples the replicas' /metrics and the CPU / RSS of a process tree every ``period`` s."""

    def __init__(self, fleet: Fleet, root_pid: int | None = None, period: float = 0.25, pss_every: int = 0) -> None:
        self.fleet, self.root_pid, self.period = fleet, root_pid, period
        self.pss_every = pss_every  # read the tree's PSS (smaps_rollup) every this many samples (0 = never)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._kinds: dict[int, str] = {}
        self._last: dict[str, dict[str, float]] = {}
        self.stale = 0  # scrapes that timed out

    def __enter__(self) -> Sampler:
        self.samples.append(self.sample())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.sample())

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.samples.append(self.sample())
            except Exception as exc:  # noqa: BLE001 - a replica busy beyond the timeout: skip this sample
                log(f"sampler: {exc!r}")

    def sample(self) -> Sample:
        tot: dict[str, float] = {}
        pools: dict[str, PoolSample] = {}
        for pool, fleet in self.fleet.pools().items():
            pools[pool] = PoolSample()
            for url in fleet.urls:
                try:
                    got = scrape(url, timeout=2.0)
                    self._last[url] = got
                except OSError:  # a replica too busy to answer in time: its last values stand
                    self.stale += 1
                    got = self._last.get(url, {})
                for k, v in got.items():
                    tot[k] = tot.get(k, 0.0) + v
                pools[pool].add(got)
        s = Sample(
            t=time.monotonic(),
            tokens=tot.get("vllm:prompt_tokens_total", 0.0) + tot.get("vllm:generation_tokens_total", 0.0),
            gen_tokens=tot.get("vllm:generation_tokens_total", 0.0),
            requests=tot.get("vllm:request_success_total", 0.0),
            running=tot.get("vllm:num_requests_running", 0.0),
            waiting=tot.get("vllm:num_requests_waiting", 0.0),
            busy_s=tot.get("slurmgen_sim:engine_busy_seconds_total", 0.0),
            pools=pools,
        )
        if self.root_pid is not None:
            with_pss = self.pss_every > 0 and len(self.samples) % self.pss_every == 0
            for pid in descendants(self.root_pid):
                got = proc_cpu_rss(pid)
                if got is None:
                    continue
                if with_pss:
                    s.pss += proc_pss(pid) or 0
                kind = self._kinds.get(pid) or classify(cmdline(pid))
                if kind != "driver" or pid == self.root_pid:  # a child between fork and exec looks like its parent
                    self._kinds[pid] = kind
                s.cpu[pid], s.rss[pid] = got
                s.kind[pid] = kind
        for pid in self.fleet.pids():
            got = proc_cpu_rss(pid)
            if got is not None:
                s.sim_cpu += got[0]
                s.sim_rss += got[1]
        return s

    # -- analysis ------------------------------------------------------------------

    def first_activity(self) -> float | None:
        base = self.samples[0]
        for s in self.samples:
            if s.tokens > base.tokens or s.running + s.waiting > 0:
                return s.t
        return None

    def at(self, t: float) -> Sample:
        """The first sample at or after ``t`` (the last one if none)."""
        for s in self.samples:
            if s.t >= t:
                return s
        return self.samples[-1]

    def window(self, t0: float, t1: float) -> dict[str, float]:
        a, b = self.at(t0), self.at(t1)
        dt = max(b.t - a.t, 1e-9)
        out = {
            "window_s": round(dt, 3),
            "tokens": b.tokens - a.tokens,
            "requests": b.requests - a.requests,
            "tokens_per_s": (b.tokens - a.tokens) / dt,
            "generation_tokens_per_s": (b.gen_tokens - a.gen_tokens) / dt,
            "requests_per_s": (b.requests - a.requests) / dt,
            "engine_busy_s": b.busy_s - a.busy_s,
            "sim_cpu_s": b.sim_cpu - a.sim_cpu,
        }
        inside = [s for s in self.samples if a.t <= s.t <= b.t] or [b]
        out["sim_in_flight_mean"] = sum(s.running + s.waiting for s in inside) / len(inside)
        out["sim_running_mean"] = sum(s.running for s in inside) / len(inside)
        cpu: dict[str, float] = {}
        for pid, c in b.cpu.items():
            kind = b.kind.get(pid, "other")
            cpu[kind] = cpu.get(kind, 0.0) + c - a.cpu.get(pid, 0.0)
        out["cpu_s_by_kind"] = {k: round(v, 4) for k, v in cpu.items()}  # type: ignore[assignment]
        if len(b.pools) > 1:
            out["by_pool"] = self._pool_windows(a, b, inside)  # type: ignore[assignment]
        return out

    def _pool_windows(self, a: Sample, b: Sample, inside: list[Sample]) -> dict[str, dict[str, float]]:
        """Each pool's figures over the window [a, b] (its replicas' counters alone)."""
        dt = max(b.t - a.t, 1e-9)
        fleets = self.fleet.pools()
        out = {}
        for pool, pb in b.pools.items():
            pa = a.pools.get(pool, PoolSample())
            answered = pb.latency_count - pa.latency_count
            scale, n = fleets[pool].time_scale, fleets[pool].n
            out[pool] = {
                "tokens": pb.tokens - pa.tokens, "requests": pb.requests - pa.requests,
                "tokens_per_s": (pb.tokens - pa.tokens) / dt,
                "generation_tokens_per_s": (pb.gen_tokens - pa.gen_tokens) / dt,
                "requests_per_s": (pb.requests - pa.requests) / dt,
                # server side, wall seconds: arrival at the replica to its last token, mean over the window
                "mean_latency_s": (pb.latency_sum_s - pa.latency_sum_s) / answered if answered else None,
                "in_flight_mean": sum(s.pools[pool].in_flight for s in inside if pool in s.pools) / len(inside),
                "engine_busy_frac": round((pb.busy_s - pa.busy_s) / (dt * scale * n), 3) if scale > 0 else None,
            }
        return out

    def max_server_in_flight(self) -> float:
        return max((s.running + s.waiting for s in self.samples), default=0.0)

    def peak_rss(self, kinds: tuple[str, ...] = SLURMGEN_KINDS, until: float | None = None) -> int:
        """Peak of the summed RSS of those processes (up to ``until``: not while they shut down)."""
        return max((sum(r for pid, r in s.rss.items() if s.kind.get(pid) in kinds) for s in self.samples
                    if until is None or s.t <= until), default=0)

    def total_cpu(self, kinds: tuple[str, ...] = SLURMGEN_KINDS) -> dict[str, float]:
        """CPU seconds per kind over the whole run (each pid's last sample)."""
        last: dict[int, tuple[str, float]] = {}
        for s in self.samples:
            for pid, c in s.cpu.items():
                last[pid] = (s.kind.get(pid, "other"), c)
        out: dict[str, float] = {}
        for kind, c in last.values():
            if kind in kinds:
                out[kind] = out.get(kind, 0.0) + c
        return out

    def timeline(self) -> list[dict[str, float]]:
        t0 = self.samples[0].t
        return [{"t": round(s.t - t0, 3), "tokens": s.tokens, "in_flight": s.running + s.waiting,
                 "rss": sum(r for pid, r in s.rss.items() if s.kind.get(pid) in SLURMGEN_KINDS)}
                for s in self.samples]


# -- machine ---------------------------------------------------------------------------


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "", False
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    import aiohttp
    import msgspec
    import zmq

    return {
        "cpu_model": model, "cores": os.cpu_count(), "mem_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(), "platform": platform.platform(),
        "slurmgen_commit": commit, "worktree_dirty": dirty,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "msgspec": msgspec.__version__,
        "aiohttp": aiohttp.__version__,
    }


def dump_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str))
    os.replace(tmp, path)


W = TypeVar("W", bound="Watcher")


class Watcher:
    """A sampling thread for the length of a ``with`` block: subclasses define ``_run``, which
    loops ``while not self._stop.wait(period)``."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self: W) -> W:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
