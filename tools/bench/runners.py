"""Load generators run in their own process (``python tools/bench.py worker --spec JSON``).

Every one of them runs the *real* workflow — its roles (prompts, parsers), its
transition function, ``slurmgen.runtime.worker.run_role`` — over the *real*
``LLMClient``; only the way tasks are scheduled differs:

- ``record``: the central loop with a client that also records every request body
  per task, and the LLM pool it went to (the request stream the ideal client replays);
- ``ideal``: the ideal direct client — no workflow, no runtime: pre-encoded request
  bodies straight at the replicas over aiohttp, each task's requests in order,
  ``concurrency`` tasks at once (least-outstanding replica of the request's pool, ties
  in turn);
- ``central``: one asyncio loop runs every role of every task (a driver-centric
  orchestrator), ``concurrency`` tasks at once;
- ``batch``: Ray Data style batch barrier: batches of ``batch`` rows, each batch
  ``gather``-ed and waiting for its slowest row, ``concurrency`` batches at once;
- ``threads``: tau2's runner: a thread pool, one row per thread, each thread running
  its row's whole conversation synchronously (own event loop and client).

Tasks are the dataset's rows in order, trial after trial, without end (the benchmark
measures a time window and then kills the process), unless ``max_tasks`` is given.

LLM pools: ``record`` and ``ideal`` take ``pools`` (pool -> replica URLs) and ``models``
(pool -> served model); the workflow's ``role_llm`` (in ``workflow_overrides``) maps its
roles to them, as in slurmgen. Without ``pools``, ``urls`` is the one pool, ``default``.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import msgspec

from slurmgen.config.workflows import get_workflow
from slurmgen.llm.client import LLMClient
from slurmgen.llm.types import Endpoint
from slurmgen.protocol import Orchestrator
from slurmgen.runtime.origin import task_seed, to_record
from slurmgen.runtime.worker import run_role
from slurmgen.workflow import RoleContext, Workflow, first_role

MODEL = "sim-llama-3.1-8b"
DEFAULT_POOL = "default"


@dataclass
class Spec:
    kind: str
    workflow: str
    urls: list[str]
    concurrency: int = 64
    batch: int = 100
    max_tasks: int = 0  # 0 = without end
    workflow_overrides: dict[str, Any] | None = None
    dataset: str = ""  # JSONL; "" = the workflow's built-in dataset
    chains: str = ""  # record: where to write; ideal: what to replay
    records: str = ""  # where the runners append their records ("" = nowhere)
    run_seed: int = 0
    pools: dict[str, list[str]] | None = None  # record, ideal: pool -> its replicas' URLs (None = {default: urls})
    models: dict[str, str] | None = None  # pool -> served model (None = MODEL)

    def pool_urls(self) -> dict[str, list[str]]:
        return self.pools or {DEFAULT_POOL: self.urls}

    def model(self, pool: str) -> str:
        return (self.models or {}).get(pool, MODEL)


def workflow_conf(name: str, overrides: dict[str, Any] | None) -> Any:
    if name == "nr":
        from slurmgen.agents.nr.conf import NRConf

        conf: Any = NRConf()
    elif name == "coral":
        from slurmgen.agents.coral.conf import CoralConf

        conf = CoralConf()
    else:
        raise SystemExit(f"unknown workflow {name!r}")
    for k, v in (overrides or {}).items():
        setattr(conf, k, v)
    return conf


def dataset_rows(conf: Any, dataset: str = "") -> list[tuple[str, bytes]]:
    """(row_id, raw line) of ``dataset`` (default: the workflow's built-in dataset), in file order."""
    workflow = get_workflow(conf.name)
    path = Path(dataset) if dataset or workflow.builtin_dataset is None else Path(workflow.builtin_dataset(conf))
    row_type = workflow.row
    out = []
    for line in path.read_bytes().splitlines():
        line = line.strip()
        if line:
            out.append((str(msgspec.json.decode(line, type=row_type).row_id()), line))
    return out


def task_stream(rows: list[tuple[str, bytes]], max_tasks: int) -> Iterator[tuple[str, str, int, bytes]]:
    """(task_id, row_id, trial, raw), trial 0 of every row, then trial 1, ... (as slurmgen with run.trials)."""
    n = 0
    for trial in itertools.count():
        for row_id, raw in rows:
            if max_tasks and n >= max_tasks:
                return
            yield f"{row_id}:{trial}", row_id, trial, raw
            n += 1


def make_client(urls: list[str], model: str = MODEL) -> LLMClient:
    client = LLMClient(request_timeout_s=600.0, max_retries=4, backoff_s=0.5)
    client.set_endpoints([Endpoint(url=u, model=model) for u in urls])
    return client


def role_contexts(workflow: Workflow, conf: Any, clients: Mapping[str, Any]) -> dict[str, RoleContext]:
    """Each role's context, with its pool's client (``conf.role_llm``; unmapped roles: ``default``)."""
    log = logging.getLogger("bench.role")
    pools = {role: conf.role_llm.get(role, DEFAULT_POOL) for role in workflow.roles}
    missing = sorted(set(pools.values()) - set(clients))
    if missing:
        raise SystemExit(f"role_llm names pools {missing} this runner has no replicas for (pools: {sorted(clients)})")
    return {role: RoleContext(llm=clients[pool], conf=conf, log=log) for role, pool in pools.items()}


_current_task: contextvars.ContextVar[str] = contextvars.ContextVar("task", default="")


class RecordingClient:
    """One pool's real LLMClient, remembering each request body of each task and its pool in ``chains``
    (shared by the pools' recording clients: a task's requests stay in order)."""

    def __init__(self, llm: LLMClient, pool: str, chains: dict[str, list[tuple[str, bytes]]]) -> None:
        self.llm, self.pool, self.chains = llm, pool, chains

    async def chat(self, messages: Any, *, sampling: Any, seed: Any = None, tools: Any = None,
                   tool_choice: Any = None, response_format: Any = None, sticky_key: Any = None,
                   model: Any = None) -> Any:
        body = self.llm._body(messages, sampling, seed, tools, tool_choice, response_format)
        self.chains.setdefault(_current_task.get(), []).append((self.pool, body))
        return await self.llm.chat(messages, sampling=sampling, seed=seed, tools=tools, tool_choice=tool_choice,
                                   response_format=response_format, sticky_key=sticky_key, model=model)


class Stats:
    def __init__(self) -> None:
        self.tasks = self.calls = self.tokens = 0
        self.lock = threading.Lock()

    def add(self, orch: Orchestrator) -> None:
        with self.lock:
            self.tasks += 1
            for u in orch.usage.values():
                self.calls += u.requests
                self.tokens += u.prompt_tokens + u.completion_tokens


class Sink:
    """Appends each finished task's record (JSONL), as every runner must write its output."""

    def __init__(self, path: str) -> None:
        self.f = open(path, "ab") if path else None
        self.enc = msgspec.json.Encoder()
        self.lock = threading.Lock()

    def write(self, orch: Orchestrator) -> None:
        if self.f is not None:
            line = self.enc.encode(to_record(orch)) + b"\n"
            with self.lock:
                self.f.write(line)


async def run_task(workflow: Workflow, ctxs: Mapping[str, RoleContext], task: tuple[str, str, int, bytes],
                   run_seed: int) -> Orchestrator:
    """One task from its row to its end, every role in this loop (``run_role`` as a peer runs it)."""
    task_id, row_id, trial, raw = task
    _current_task.set(task_id)
    orch = Orchestrator(task_id=task_id, row_id=row_id, trial=trial, seed=task_seed(run_seed, task_id),
                        origin="bench", row=msgspec.Raw(raw), created_at=time.time())
    first = first_role(workflow, orch)
    orch.next_role = first or ""
    while orch.next_role:
        await run_role(workflow, ctxs.get(orch.next_role), orch)
    return orch


# -- the runners ---------------------------------------------------------------------


async def central(spec: Spec, record: bool = False) -> Stats:
    conf = workflow_conf(spec.workflow, spec.workflow_overrides)
    workflow = get_workflow(conf.name)
    llms = {pool: make_client(urls, spec.model(pool)) for pool, urls in spec.pool_urls().items()}
    chains: dict[str, list[tuple[str, bytes]]] = {}
    clients = {pool: RecordingClient(llm, pool, chains) for pool, llm in llms.items()} if record else llms
    ctxs = role_contexts(workflow, conf, clients)
    tasks = task_stream(dataset_rows(conf, spec.dataset), spec.max_tasks)
    stats, sink = Stats(), Sink(spec.records)

    async def worker() -> None:
        for task in tasks:  # one shared iterator: every worker takes the next task
            orch = await run_task(workflow, ctxs, task, spec.run_seed)
            stats.add(orch)
            sink.write(orch)

    await asyncio.gather(*(asyncio.create_task(worker()) for _ in range(spec.concurrency)))
    if record:
        with open(spec.chains, "wb") as f:
            for task_id, sent in chains.items():
                line = {"task": task_id, "bodies": [b.decode() for _, b in sent], "pools": [p for p, _ in sent]}
                f.write(msgspec.json.encode(line) + b"\n")
    for llm in llms.values():
        await llm.close()
    return stats


async def batch_barrier(spec: Spec) -> Stats:
    conf = workflow_conf(spec.workflow, spec.workflow_overrides)
    workflow = get_workflow(conf.name)
    llm = make_client(spec.urls)
    ctxs = role_contexts(workflow, conf, {DEFAULT_POOL: llm})
    tasks = task_stream(dataset_rows(conf, spec.dataset), spec.max_tasks)
    stats, sink = Stats(), Sink(spec.records)

    async def one(task: tuple[str, str, int, bytes]) -> None:
        orch = await run_task(workflow, ctxs, task, spec.run_seed)
        stats.add(orch)
        sink.write(orch)

    async def batch_worker() -> None:  # a map_batches actor: one batch at a time
        while True:
            batch = list(itertools.islice(tasks, spec.batch))
            if not batch:
                return
            await asyncio.gather(*(one(t) for t in batch))  # the barrier

    await asyncio.gather(*(batch_worker() for _ in range(spec.concurrency)))
    await llm.close()
    return stats


def thread_pool(spec: Spec) -> Stats:
    from concurrent.futures import ThreadPoolExecutor

    conf = workflow_conf(spec.workflow, spec.workflow_overrides)
    workflow = get_workflow(conf.name)
    tasks = task_stream(dataset_rows(conf, spec.dataset), spec.max_tasks)
    lock = threading.Lock()
    stats, sink = Stats(), Sink(spec.records)

    def thread_main() -> None:  # tau2: each thread runs whole simulations synchronously
        loop = asyncio.new_event_loop()
        llm = loop.run_until_complete(_make_client_async(spec.urls))
        ctxs = role_contexts(workflow, conf, {DEFAULT_POOL: llm})
        while True:
            with lock:
                task = next(tasks, None)
            if task is None:
                break
            orch = loop.run_until_complete(run_task(workflow, ctxs, task, spec.run_seed))
            stats.add(orch)
            sink.write(orch)
        loop.run_until_complete(llm.close())
        loop.close()

    with ThreadPoolExecutor(max_workers=spec.concurrency) as pool:
        for f in [pool.submit(thread_main) for _ in range(spec.concurrency)]:
            f.result()
    return stats


async def _make_client_async(urls: list[str]) -> LLMClient:
    return make_client(urls)


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Reply(msgspec.Struct):
    usage: _Usage = msgspec.field(default_factory=_Usage)


class _Replicas:
    """One pool's replicas for the ideal client: chat URLs and requests outstanding at each."""

    def __init__(self, urls: list[str], model: str) -> None:
        self.urls = [u.rstrip("/") + "/v1/chat/completions" for u in urls]
        self.outstanding = [0] * len(self.urls)
        self.model = msgspec.json.encode(model) if model else b""

    def with_model(self, body: bytes) -> bytes:
        """The body as the pool's client sends it (``model`` first, as ``LLMClient``)."""
        return b'{"model":%s,%s' % (self.model, body[1:]) if self.model else body


def load_chains(spec: Spec, pools: dict[str, _Replicas]) -> list[list[tuple[_Replicas, bytes]]]:
    """Each recorded task's requests, in order, pre-encoded for the pool each went to."""
    chains = []
    for line in Path(spec.chains).read_bytes().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        names = rec.get("pools") or [DEFAULT_POOL] * len(rec["bodies"])
        missing = sorted(set(names) - set(pools))
        if missing:
            raise SystemExit(f"{spec.chains}: requests of pools {missing}, which the spec gives no replicas "
                             f"(pools: {sorted(pools)})")
        chains.append([(pools[n], pools[n].with_model(b.encode())) for n, b in zip(names, rec["bodies"], strict=True)])
    return [c for c in chains if c] or [[]]


async def ideal(spec: Spec) -> Stats:
    """Replay the recorded request bodies straight at the replicas; no workflow code at all."""
    import aiohttp

    # one pool (no spec.pools): the bodies as recorded, without a model, as before pools existed
    pools = {name: _Replicas(urls, spec.model(name) if spec.pools else "")
             for name, urls in spec.pool_urls().items()}
    order = itertools.cycle(load_chains(spec, pools))
    turn = itertools.count()
    stats = Stats()

    decode = msgspec.json.Decoder(_Reply).decode
    headers = {"Content-Type": "application/json"}
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=600)) as http:
        async def worker() -> None:
            nonlocal done
            while not spec.max_tasks or done < spec.max_tasks:
                chain = next(order)
                for pool, body in chain:
                    outstanding = pool.outstanding
                    least = min(outstanding)
                    ties = [i for i, n in enumerate(outstanding) if n == least]
                    i = ties[next(turn) % len(ties)]
                    outstanding[i] += 1
                    try:
                        async with http.post(pool.urls[i], data=body, headers=headers) as resp:
                            raw = await resp.read()
                            if resp.status != 200:  # e.g. a body for another pool's model: no silent zeros
                                raise RuntimeError(f"{pool.urls[i]}: HTTP {resp.status}: {raw[:300]!r}")
                    finally:
                        outstanding[i] -= 1
                    u = decode(raw).usage
                    stats.calls += 1
                    stats.tokens += u.prompt_tokens + u.completion_tokens
                stats.tasks += 1
                done += 1

        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    return stats


def main(spec_json: str) -> int:
    spec = Spec(**json.loads(spec_json))
    logging.basicConfig(level=logging.ERROR)
    t0, c0 = time.monotonic(), os.times()
    if spec.kind == "threads":
        stats = thread_pool(spec)
    else:
        import uvloop

        coro = {"record": lambda: central(spec, record=True), "central": lambda: central(spec),
                "batch": lambda: batch_barrier(spec), "ideal": lambda: ideal(spec)}[spec.kind]()
        stats = uvloop.run(coro)
    c1 = os.times()
    print(json.dumps({"tasks": stats.tasks, "calls": stats.calls, "tokens": stats.tokens,
                      "wall_s": time.monotonic() - t0, "cpu_s": c1.user + c1.system - c0.user - c0.system}),
          flush=True)
    return 0
