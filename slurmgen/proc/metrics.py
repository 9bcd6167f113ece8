"""Prometheus metrics of a run's processes (``prometheus_client``).

Each process (the driver, every agent peer) creates one :class:`Exporter`. It serves
``/metrics`` over HTTP on a free port of the host the process binds to, and writes
its scrape target, atomically, in Prometheus ``file_sd`` format to
``RUN/state/prometheus/<name>.json``, so that one scrape job finds every process
of a run::

    scrape_configs:
      - job_name: slurmgen
        file_sd_configs:
          - files: ["/shared/runs/my-run/state/prometheus/*.json"]

(Prometheus allows ``*`` in the last path segment only: for every run at once, give
each process ``sd_dir`` — ``run.metrics_sd_dir`` — a flat directory where targets
are also written as ``<run>-<name>.json``.)

The metric objects are typed and their label children are bound once, up front or
the first time a label value appears, so the per-hop cost is an attribute or dict
lookup and a locked add. Counters the peer already keeps (tasks issued, hops
received, LLM client counters) are folded in by :meth:`PeerMetrics.sync` from its
periodic stats, at no cost on the hot path.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.process_collector import ProcessCollector

from slurmgen.protocol import TERMINAL, Failure
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.transport import hosts, ports

log = logging.getLogger("slurmgen.metrics")

# role handlers: a local filter (ms) up to a long multi-turn LLM conversation (minutes)
ROLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0, 600.0)
HOP_TYPES = ("orch", "orch_local", "orch_home", "hold", "credit", "malformed")
STATUSES = tuple(s.value for s in TERMINAL)
# failure classes of a record's reason (README, "Row-level errors"): their series exist from the start
FAILURE_CLASSES = tuple(f.value for f in Failure)


def sd_dir(run_dir: Path | str) -> Path:
    """Where a run's scrape targets go: ``RUN/state/prometheus``."""
    return RunDir(Path(run_dir)).state / "prometheus"


def _target_host(host: str) -> str:
    """An address others can scrape: a wildcard bind is announced by the node's name."""
    if host in ("", "0.0.0.0", "::", "*"):
        return socket.gethostname()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def write_target(run_dir: Path | str, name: str, address: str, labels: Mapping[str, str],
                 extra_dir: Path | str | None = None) -> list[Path]:
    """Write one ``file_sd`` target group for ``address`` ("host:port"); return the files.

    Also usable for a process that serves its own ``/metrics`` (a vLLM server: its
    ``vllm:*`` metrics), e.g. ``write_target(run, "llm-0", "node12:8000", {"component": "llm"})``.
    Not ``kind``: metrics have a ``kind`` label, and a target label of the same name
    would rename theirs to ``exported_kind`` in Prometheus.
    """
    run_dir = Path(run_dir)
    group = [{"targets": [address],
              "labels": {"run": run_dir.name, "run_dir": str(run_dir), "process": name, **labels}}]
    data = (json.dumps(group, indent=1) + "\n").encode()
    paths = [sd_dir(run_dir) / f"{name}.json"]
    if extra_dir:
        paths.append(Path(extra_dir) / f"{run_dir.name}-{name}.json")
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    return paths


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no line per scrape on stderr
        pass


def serve(registry: CollectorRegistry, host: str) -> WSGIServer:
    """``/metrics`` of ``registry`` on a free port of ``host``, from a daemon thread."""
    server_class = _Server6 if ":" in host else _Server
    app = make_wsgi_app(registry)
    httpd = ports.bind_in_range(lambda port: make_server(host, port, app, server_class, handler_class=_Quiet))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                     name="metrics-http").start()
    return httpd


class Exporter:
    """One per process: a metrics registry, its HTTP server and its scrape target file.

    ``enabled=False`` serves nothing and writes nothing; the metric objects still work
    (a process code path need not test whether metrics are on).
    """

    def __init__(self, name: str, run_dir: Path | str, host: str = "127.0.0.1", *, kind: str = "",
                 enabled: bool = True, sd_extra_dir: Path | str | None = None) -> None:
        self.name = name
        self.run_dir = Path(run_dir)
        self.kind = kind or name.split("-", 1)[0]
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        self.port = 0
        self.address = ""
        self.target_files: list[Path] = []
        self._server: Any = None
        if not enabled:
            return
        bind = host or "127.0.0.1"
        try:
            self._server = serve(self.registry, bind)
        except OSError as exc:  # metrics are for watching a run: never the reason it fails
            log.warning("metrics of %s not served: cannot bind %s: %s", name, bind, exc)
            return
        self.port = int(self._server.server_address[1])
        self.address = f"{_target_host(bind)}:{self.port}"
        self.target_files = write_target(self.run_dir, name, self.address,
                                         {"component": self.kind, "node": hosts.node_name(),
                                          "pid": str(os.getpid())},
                                         sd_extra_dir)
        log.info("metrics of %s at http://%s/metrics (target %s)", name, self.address, self.target_files[0])

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics" if self.address else ""

    def peer(self, roles: Iterable[str] = ()) -> PeerMetrics:
        return PeerMetrics(self.registry, roles)

    def pool(self) -> PoolMetrics:
        return PoolMetrics(self.registry)

    def driver(self, expected: int = 0, initial: Any = None) -> DriverMetrics:
        """``initial``: the counts the progress bar starts from (a resumed run's records)."""
        return DriverMetrics(self.registry, expected, initial)

    def close(self) -> None:
        """Stop serving and withdraw the scrape target (a finished process is not a target)."""
        for path in self.target_files:
            path.unlink(missing_ok=True)
        self.target_files = []
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Delta:
    """Folds cumulative values (a process's own counters) into Prometheus counters."""

    def __init__(self) -> None:
        self._last: dict[Any, float] = {}

    def add(self, key: Any, counter: Any, value: float) -> None:
        delta = value - self._last.get(key, 0.0)
        if delta > 0:
            counter.inc(delta)
            self._last[key] = value
        elif delta < 0:  # the source restarted from zero
            self._last[key] = value


class _Labelled:
    """Children of a labelled metric, bound once per label value."""

    def __init__(self, metric: Any, preset: Iterable[str] = ()) -> None:
        self.metric = metric
        self.children: dict[str, Any] = {}
        for value in preset:
            self[value]

    def __getitem__(self, value: Any) -> Any:
        """``value``: the label's value, or a tuple of values of several labels."""
        child = self.children.get(value)
        if child is None:
            values = value if isinstance(value, tuple) else (value,)
            child = self.children[value] = self.metric.labels(*values)
        return child


class RoleMark:
    __slots__ = ("completion", "prompt", "role", "t0")

    def __init__(self, role: str, t0: float, prompt: int, completion: int) -> None:
        self.role, self.t0, self.prompt, self.completion = role, t0, prompt, completion


class PeerMetrics:
    """An agent peer's metrics.

    Hot path (per hop): ``mark = m.role_start(orch)`` before a role handler runs and
    ``m.role_end(mark, orch)`` after it: latency histogram and tokens per role.
    Every ``lease_renew_s``: ``m.sync(stats)`` with the peer's stats dict.
    """

    def __init__(self, registry: CollectorRegistry, roles: Iterable[str] = ()) -> None:
        roles = tuple(roles)
        r = registry
        self.issued = Counter("slurmgen_tasks_issued", "Tasks issued by this origin (first attempts)", registry=r)
        self.written = Counter("slurmgen_tasks_written", "Records written by this origin", registry=r)
        self.reissued = Counter("slurmgen_tasks_reissued", "Tasks issued again after their lease ran out", registry=r)
        self.retried = Counter("slurmgen_tasks_retried", "Tasks issued again after a retryable failure", registry=r)
        self.duplicates = Counter("slurmgen_tasks_duplicates", "Late duplicate results dropped by this origin",
                                  registry=r)
        self.in_flight = Gauge("slurmgen_tasks_in_flight", "Tasks of this origin not yet written (leases)",
                               registry=r)
        self.held = Gauge("slurmgen_tasks_held", "Tasks this peer is responsible for right now", registry=r)
        self.refused_frames = Counter("slurmgen_refused_frames", "Inbound frames refused by the codec", registry=r)
        self.hops = _Labelled(Counter("slurmgen_hops_received", "Messages received, by type", ["type"],
                                      registry=r), HOP_TYPES)
        self.wire_bytes = _Labelled(Counter("slurmgen_wire_bytes", "Bytes counted by the peer, by kind", ["kind"],
                                            registry=r))
        self.role_latency = _Labelled(Histogram("slurmgen_role_latency_seconds", "Role handler latency",
                                                ["role"], buckets=ROLE_BUCKETS, registry=r), roles)
        self.prompt_tokens = _Labelled(Counter("slurmgen_prompt_tokens", "Prompt tokens spent by role handlers "
                                               "on this peer", ["role"], registry=r), roles)
        self.completion_tokens = _Labelled(Counter("slurmgen_completion_tokens", "Completion tokens spent by role "
                                                   "handlers on this peer", ["role"], registry=r), roles)
        self._add_llm(r)
        self.tool_ops = _Labelled(Counter("slurmgen_tool_sessions", "Tool-pool session operations of this peer, "
                                          "by kind (open, call, close, lost; queued: opens told to wait their turn, "
                                          "refused: opens a member without room refused); a task may close on another "
                                          "peer than the one that opened: sessions open = sum(open) - sum(close)",
                                          ["kind"], registry=r),
                                  ("open", "call", "close", "lost"))
        self.spill_inline = Counter("slurmgen_spill_inline_fallbacks", "Times the spill store was full (or "
                                    "failed) and a task's payloads travelled inline", registry=r)
        self.spill_free_failed = Counter("slurmgen_spill_free_failed", "Spill delete transactions that failed "
                                         "(their keys are deleted later)", registry=r)
        self.spill_used = Gauge("slurmgen_spill_used_bytes", "Bytes of data pages in this node's spill store",
                                registry=r)
        self.cross_node = _Labelled(Counter("slurmgen_cross_node", "What this peer moved to or from other nodes, "
                                            "by kind (bytes_sent, frames_sent, spill_bytes_fetched, spill_fetches, "
                                            "tool_bytes)", ["kind"], registry=r))
        self.tool_waiting = Gauge("slurmgen_tool_opens_waiting", "Session opens of this peer waiting in a member's "
                                  "queue", registry=r)
        self._delta = _Delta()

    def _add_llm(self, r: CollectorRegistry) -> None:
        """The LLM client's metrics, by replica URL and pool."""
        llm = ["endpoint", "pool"]  # the replica's URL and its LLM pool (slurmgen.config.pools)
        self.llm_requests = _Labelled(Counter("slurmgen_llm_requests", "LLM request attempts", llm, registry=r))
        self.llm_ok = _Labelled(Counter("slurmgen_llm_ok", "LLM attempts answered with a completion", llm,
                                        registry=r))
        self.llm_errors = _Labelled(Counter("slurmgen_llm_errors", "LLM attempts that failed", llm, registry=r))
        self.llm_retries = _Labelled(Counter("slurmgen_llm_retries", "Failed LLM attempts then retried", llm,
                                             registry=r))
        self.llm_latency = _Labelled(Counter("slurmgen_llm_latency_seconds", "Seconds from sending to reading "
                                             "the answered LLM attempts (rate / rate of _ok = mean latency)", llm,
                                             registry=r))
        self.llm_outstanding = _Labelled(Gauge("slurmgen_llm_outstanding", "LLM requests outstanding (in flight)",
                                               llm, registry=r))

    # -- hot path ---------------------------------------------------------------------
    def role_start(self, orch: Any) -> RoleMark:
        role = orch.next_role
        u = orch.usage.get(role)
        return RoleMark(role, time.perf_counter(), u.prompt_tokens if u else 0, u.completion_tokens if u else 0)

    def role_end(self, mark: RoleMark, orch: Any) -> None:
        role = mark.role
        self.role_latency[role].observe(time.perf_counter() - mark.t0)
        u = orch.usage.get(role)
        if u is not None:
            if u.prompt_tokens > mark.prompt:
                self.prompt_tokens[role].inc(u.prompt_tokens - mark.prompt)
            if u.completion_tokens > mark.completion:
                self.completion_tokens[role].inc(u.completion_tokens - mark.completion)

    # -- periodic ---------------------------------------------------------------------
    def sync(self, stats: Mapping[str, Any]) -> None:
        """Fold in the peer's cumulative stats (``slurmgen.runtime.stats.PeerStats`` as builtins)."""
        d = self._delta
        for key, counter in (("issued", self.issued), ("written", self.written), ("reissued", self.reissued),
                             ("retried", self.retried), ("duplicates", self.duplicates),
                             ("refused_frames", self.refused_frames)):
            if key in stats:
                d.add(key, counter, float(stats[key]))
        self.in_flight.set(float(stats.get("in_flight", 0)))
        self.held.set(float(stats.get("held", 0)))
        for kind, n in dict(stats.get("received", {})).items():
            if "bytes" in kind:
                d.add(("bytes", kind), self.wire_bytes[kind], float(n))
            else:
                d.add(("hop", kind), self.hops[kind], float(n))
        for url, s in dict(stats.get("llm", {})).items():
            s = s if isinstance(s, Mapping) else msgspec.structs.asdict(s)
            labels = (url, str(s.get("pool") or "default"))
            for key, labelled in (("requests", self.llm_requests), ("ok", self.llm_ok), ("errors", self.llm_errors),
                                  ("retries", self.llm_retries), ("latency_s", self.llm_latency)):
                d.add((key, url), labelled[labels], float(s.get(key, 0)))
        spill = dict(stats.get("spill", {}))
        if spill:
            d.add("spill_inline", self.spill_inline, float(spill.get("inline_fallbacks", 0)))
            d.add("spill_free_failed", self.spill_free_failed, float(spill.get("free_failed", 0)))
            self.spill_used.set(float(spill.get("used_bytes", 0)))
        for kind, n in dict(stats.get("cross_node", {})).items():
            d.add(("cross_node", kind), self.cross_node[kind], float(n))
        self._sync_outstanding(stats)
        tools = dict(stats.get("tools", {}))
        for kind, n in tools.items():
            if kind != "waiting":
                d.add(("tools", kind), self.tool_ops[kind], float(n))
        self.tool_waiting.set(float(tools.get("waiting", 0)))

    def _sync_outstanding(self, stats: Mapping[str, Any]) -> None:
        """LLM requests in flight, per endpoint and its pool (0 for an endpoint with none now)."""
        outstanding = dict(stats.get("llm_outstanding", {}))
        pools = {url: str((s if isinstance(s, Mapping) else msgspec.structs.asdict(s)).get("pool") or "default")
                 for url, s in dict(stats.get("llm", {})).items()}
        for key in set(self.llm_outstanding.children) | {(u, pools.get(u, "default")) for u in outstanding}:
            self.llm_outstanding[key].set(float(outstanding.get(key[0], 0)))


class PoolMetrics:
    """A tool-pool member's sessions: ``sync(stats)`` with ``PoolServer.stats()`` every second."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sessions = _Labelled(Gauge("slurmgen_toolpool_sessions", "Sessions of this tool-pool member by state: "
                                        "open, opening (being built), queued (waiting for room or their turn)",
                                        ["state"], registry=r), ("open", "opening", "queued"))
        self.capacity = Gauge("slurmgen_toolpool_capacity", "Sessions this member hosts at most", registry=r)
        self.opens = _Labelled(Counter("slurmgen_toolpool_opens", "Session opens by outcome: started, queued "
                                       "(waited first), refused (no room; the client asked another member)",
                                       ["outcome"], registry=r), ("started", "queued", "refused"))
        self.queue_wait = Counter("slurmgen_toolpool_queue_wait_seconds", "Seconds opens waited in the queue "
                                  "(rate / rate of queued = mean wait)", registry=r)
        self.calls = Counter("slurmgen_toolpool_calls", "Session calls served", registry=r)
        self._delta = _Delta()

    def sync(self, stats: Mapping[str, Any]) -> None:
        self.sessions["open"].set(float(stats.get("open", 0)))
        self.sessions["opening"].set(float(stats.get("opening", 0)))
        self.sessions["queued"].set(float(stats.get("queued_now", 0)))
        self.capacity.set(float(stats.get("capacity", 0)))
        d = self._delta
        for outcome in ("started", "queued", "refused"):
            d.add(outcome, self.opens[outcome], float(stats.get(outcome, 0)))
        d.add("wait", self.queue_wait, float(stats.get("queue_wait_s", 0.0)))
        d.add("calls", self.calls, float(stats.get("calls", 0)))


class DriverMetrics:
    """The driver's view, from the output shards: the numbers of its progress bar.

    ``update(counts)`` after each poll of the results (a ``progress.Counts``).
    """

    def __init__(self, registry: CollectorRegistry, expected: int = 0, initial: Any = None) -> None:
        r = registry
        self.done = _Labelled(Counter("slurmgen_driver_tasks_done", "Records written, by status", ["status"],
                                      registry=r), STATUSES)
        self.failures = _Labelled(Counter("slurmgen_driver_failures", "Failed records, by reason class",
                                          ["reason"], registry=r), FAILURE_CLASSES)
        self.tokens = _Labelled(Counter("slurmgen_driver_tokens", "Tokens of the written records",
                                        ["kind"], registry=r), ("prompt", "completion"))
        self.tokens_per_s = Gauge("slurmgen_driver_tokens_per_second",
                                  "Tokens/s of this invocation (the progress bar's tok_s)", registry=r)
        self.tasks_per_s = Gauge("slurmgen_driver_tasks_per_second", "Tasks/s of this invocation", registry=r)
        self.expected = Gauge("slurmgen_driver_tasks_expected", "Tasks the run will write", registry=r)
        self.expected.set(expected)
        self._delta = _Delta()
        self._base: tuple[float, int, int] | None = None  # (monotonic, tokens, done) the rates start from
        if initial is not None:
            self.update(initial)

    def update(self, counts: Any) -> None:
        d = self._delta
        for status in STATUSES:
            d.add(("done", status), self.done[status], float(getattr(counts, status)))
        for reason, n in counts.failure_reasons.items():
            d.add(("failed", reason), self.failures[reason or "unknown"], float(n))
        d.add("prompt", self.tokens["prompt"], float(counts.prompt_tokens))
        d.add("completion", self.tokens["completion"], float(counts.completion_tokens))
        now = time.monotonic()
        if self._base is None:
            self._base = (now, counts.tokens, counts.done)
        t0, tokens0, done0 = self._base
        elapsed = max(1e-6, now - t0)
        self.tokens_per_s.set((counts.tokens - tokens0) / elapsed)
        self.tasks_per_s.set((counts.done - done0) / elapsed)
