"""Benchmark section ``kv``: routing and scheduling policies against the servers' KV cache.

Each measurement starts ``replicas`` fresh simulators (prefix caching on, as vLLM's
default; ``kv_blocks`` KV blocks each), runs ``tasks`` tasks of a workflow, ``concurrency``
at once, through the real roles and the real ``LLMClient`` (over sockets), and reads the
simulators' /metrics. Policies:

- ``least_outstanding``: no affinity, FCFS servers (the baseline: ``ratio`` divides by it);
- ``sticky``: bounded-load hashing of each conversation (slurmgen's former default);
- ``prefix``: prefix-aware routing (slurmgen.llm.affinity, vllm-router's cache_aware);
- ``prefix_priority``: prefix-aware, servers under ``--scheduling-policy priority``, each
  request with its task's priority (older tasks first), and new tasks admitted one per
  poll while a replica reports KV pressure (slurmgen.llm.pressure).

Times are wall-clock seconds of the simulators running ``time_scale`` times faster than
the modelled GPU: compare ratios, not absolute rates. ``measure`` is one measurement,
``compare`` every policy on one workload; the section (sections/kv.py) picks the workloads.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from slurmgen.config.workflows import get_workflow
from slurmgen.llm.affinity import Routing
from slurmgen.llm.client import LLMClient
from slurmgen.llm.pressure import KVPressure
from slurmgen.llm.types import Endpoint
from slurmgen.protocol import Orchestrator, Status
from slurmgen.runtime.origin import task_seed
from slurmgen.runtime.worker import run_role
from slurmgen.workflow import RoleContext, first_role

REPO = Path(__file__).resolve().parents[2]
MODEL = "sim-llama-3.1-8b"
POLICIES = ("least_outstanding", "sticky", "prefix", "prefix_priority")
SCRIPTS = {"coral": "slurmgen.agents.coral.script:respond", "tau2": "slurmgen.agents.tau2.script:respond"}


@dataclass(frozen=True)
class KVParams:
    workflow: str  # coral | tau2 (tau2's mock domain)
    policy: str  # one of POLICIES
    kv_blocks: int  # KV cache of each replica, in 16-token blocks
    replicas: int = 2
    concurrency: int = 32  # tasks at once
    warm_s: float = 5.0  # tasks run this long before the window opens
    window_s: float = 20.0  # the measured window (tasks keep coming: each row, then further trials)
    time_scale: float = 20.0
    profile: str = "a100-llama3.1-8b"
    overrides: dict[str, Any] = field(default_factory=dict)  # workflow conf fields (e.g. coral max_turns)
    seed: int = 0


class KVResult(msgspec.Struct, kw_only=True):
    policy: str
    finished_tasks_per_s: float
    tokens_per_s: float  # prompt + generated tokens the servers processed, per second
    prefix_hit_rate: float  # vllm:prefix_cache_hits / queries over the replicas
    preemptions: int
    task_latency_p50_s: float
    task_latency_p99_s: float
    wall_s: float  # the window
    # modelled GPU time busy over modelled time, mean of the replicas: near 1 = the model binds;
    # well below 1 with tasks waiting = the driver's or the simulators' CPU does
    engine_busy: float = 0.0
    failed_tasks: int = 0
    ratio: float = 0.0  # finished_tasks_per_s / least_outstanding's (filled by compare())


_METRIC = re.compile(r"^((?:vllm|slurmgen_sim):[a-z_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.M)


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for name, value in _METRIC.findall(text):
        out[name] = out.get(name, 0.0) + float(value)
    return out


class Fleet:
    """``n`` simulator processes on free ports; a context manager."""

    def __init__(self, p: KVParams) -> None:
        self.argv = [sys.executable, "-m", "slurmgen.sim", "--port", "0", "--model", MODEL,
                     "--script", SCRIPTS[p.workflow], "--profile", p.profile, "--time-scale", str(p.time_scale),
                     "--num-gpu-blocks-override", str(p.kv_blocks), "--max-model-len", str(p.kv_blocks * 16)]
        if p.policy == "prefix_priority":
            self.argv += ["--scheduling-policy", "priority"]
        self.n, self.procs, self.urls = p.replicas, [], []  # type: ignore[var-annotated]

    def __enter__(self) -> Fleet:
        for i in range(self.n):
            self.procs.append(subprocess.Popen([*self.argv, "--seed", str(i)], stdout=subprocess.PIPE,
                                               stderr=subprocess.DEVNULL, cwd=REPO))
        for proc in self.procs:
            line = proc.stdout.readline().decode()
            m = re.search(r"listening on (http://\S+)", line)
            if not m:
                self.__exit__()
                raise RuntimeError(f"a simulator did not start ({' '.join(self.argv)}): {line!r}")
            self.urls.append(m.group(1))
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def workflow_conf(p: KVParams) -> Any:
    if p.workflow == "coral":
        from slurmgen.agents.coral.conf import CoralConf

        conf: Any = CoralConf()
    else:
        from slurmgen.agents.tau2.conf import Tau2Conf

        conf = Tau2Conf(domain="mock", task_id_in_user_prompt=True)
    for key, value in p.overrides.items():
        setattr(conf, key, value)
    return conf


def client(p: KVParams, urls: list[str]) -> LLMClient:
    routing = "prefix" if p.policy.startswith("prefix") else p.policy
    llm = LLMClient(route=Routing(policy=routing, send_priority=p.policy == "prefix_priority"), request_timeout_s=600.0)
    llm.set_endpoints([Endpoint(url=u, model=MODEL) for u in urls])
    return llm


def tools_for(p: KVParams) -> Any:
    if p.workflow != "tau2":
        return None
    from slurmgen.agents.tau2.domain import open_session
    from slurmgen.toolpool import LocalPools

    return LocalPools(open_session)


def rows(conf: Any) -> list[tuple[str, bytes]]:
    workflow = get_workflow(conf.name)
    assert workflow.builtin_dataset is not None
    out = []
    for line in Path(workflow.builtin_dataset(conf)).read_bytes().splitlines():
        if line.strip():
            out.append((str(msgspec.json.decode(line, type=workflow.row).row_id()), line))
    return out


async def run_task(workflow: Any, ctxs: dict[str, RoleContext], task: tuple[str, str, int, bytes],
                   seed: int, tools: Any) -> Orchestrator:
    task_id, row_id, trial, raw = task
    orch = Orchestrator(task_id=task_id, row_id=row_id, trial=trial, seed=task_seed(seed, task_id), origin="bench",
                        row=msgspec.Raw(raw), created_at=time.time())
    orch.next_role = first_role(workflow, orch) or ""
    while orch.next_role:
        await run_role(workflow, ctxs.get(orch.next_role), orch)
    if tools is not None:
        tools.release(orch)
    return orch


class Window(msgspec.Struct, kw_only=True):
    """What happened between the end of the warm-up and the end of the window."""

    latencies: list[float]  # of the tasks that finished in the window (not failed)
    failed: int
    seconds: float
    metrics: dict[str, float]  # increase of each replica metric, summed over the replicas


def scrape_all(urls: list[str]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for url in urls:
        for name, value in scrape(url).items():
            totals[name] = totals.get(name, 0.0) + value
    return totals


def task_list(conf: Any) -> Any:
    """The dataset's rows, trial 0 of each, then trial 1, ... without end."""
    source = rows(conf)
    for i in itertools.count():
        rid, raw = source[i % len(source)]
        yield f"{rid}:{i // len(source)}", rid, i // len(source), raw


async def drive(p: KVParams, urls: list[str]) -> Window:
    """``concurrency`` tasks at once without end; measure the window after the warm-up."""
    conf = workflow_conf(p)
    workflow, llm, tools = get_workflow(conf.name), client(p, urls), tools_for(p)
    ctxs = {role: RoleContext(llm=llm, conf=conf, log=logging.getLogger("bench.kv"), tools=tools)
            for role in workflow.roles}
    todo = task_list(conf)
    gate = KVPressure(urls) if p.policy == "prefix_priority" else None
    done: list[tuple[float, float, bool]] = []  # (end, latency, failed)
    live = 0

    admission = asyncio.Lock()  # one task admitted at a time, as a peer's origin issues them

    async def worker() -> None:
        nonlocal live
        for task in todo:
            async with admission:
                if gate is not None:
                    await gate.admit(live)
                live += 1
            t0 = time.monotonic()
            orch = await run_task(workflow, ctxs, task, p.seed, tools)
            live -= 1
            done.append((time.monotonic(), time.monotonic() - t0, orch.status == Status.FAILED))

    if gate is not None:
        gate.start()
    workers = [asyncio.create_task(worker()) for _ in range(p.concurrency)]
    await asyncio.sleep(p.warm_s)
    t0, before = time.monotonic(), await asyncio.to_thread(scrape_all, urls)
    await asyncio.sleep(p.window_s)
    t1, after = time.monotonic(), await asyncio.to_thread(scrape_all, urls)
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    if gate is not None:
        await gate.stop()
    await llm.close()
    inside = [(lat, failed) for end, lat, failed in done if t0 <= end < t1]
    return Window(latencies=[lat for lat, failed in inside if not failed], failed=sum(f for _, f in inside),
                  seconds=t1 - t0, metrics={k: v - before.get(k, 0.0) for k, v in after.items()})


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def measure(p: KVParams) -> KVResult:
    """One workflow, KV size and policy on fresh replicas."""
    if p.policy not in POLICIES:
        raise ValueError(f"unknown policy {p.policy!r}; known: {', '.join(POLICIES)}")
    with Fleet(p) as fleet:
        w = asyncio.run(drive(p, fleet.urls))
    m = w.metrics
    queries = m.get("vllm:prefix_cache_queries_total", 0.0)
    tokens = m.get("vllm:prompt_tokens_total", 0.0) + m.get("vllm:generation_tokens_total", 0.0)
    return KVResult(
        policy=p.policy,
        finished_tasks_per_s=round(len(w.latencies) / w.seconds, 3),
        tokens_per_s=round(tokens / w.seconds, 1),
        prefix_hit_rate=round(m.get("vllm:prefix_cache_hits_total", 0.0) / queries, 3) if queries else 0.0,
        preemptions=int(m.get("vllm:num_preemptions_total", 0.0)),
        task_latency_p50_s=round(quantile(w.latencies, 0.5), 2),
        task_latency_p99_s=round(quantile(w.latencies, 0.99), 2),
        wall_s=round(w.seconds, 1),
        engine_busy=round(m.get("slurmgen_sim:engine_busy_seconds_total", 0.0)
                          / (w.seconds * p.time_scale * p.replicas), 3),
        failed_tasks=w.failed,
    )


def compare(base: KVParams, policies: tuple[str, ...] = POLICIES) -> list[KVResult]:
    """Every policy on the same workload; ``ratio`` = finished tasks/s over least_outstanding's."""
    results = [measure(KVParams(**{**base.__dict__, "policy": policy})) for policy in policies]
    ref = next((r.finished_tasks_per_s for r in results if r.policy == "least_outstanding"), 0.0)
    for r in results:
        r.ratio = round(r.finished_tasks_per_s / ref, 3) if ref else 0.0
    return results


def table(workflow: str, kv: str, results: list[KVResult]) -> str:
    head = f"kv: {workflow}, {kv} KV"
    lines = [head, f"  {'policy':<18}{'tasks/s':>9}{'ratio':>7}{'tok/s':>10}{'hit':>7}{'preempt':>9}"
                   f"{'p50 s':>8}{'p99 s':>8}{'busy':>7}"]
    for r in results:
        lines.append(f"  {r.policy:<18}{r.finished_tasks_per_s:>9.3f}{r.ratio:>7.2f}{r.tokens_per_s:>10.0f}"
                     f"{r.prefix_hit_rate:>7.3f}{r.preemptions:>9d}{r.task_latency_p50_s:>8.2f}"
                     f"{r.task_latency_p99_s:>8.2f}{r.engine_busy:>7.2f}")
    return "\n".join(lines)
