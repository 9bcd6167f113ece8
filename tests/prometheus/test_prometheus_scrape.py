"""A real Prometheus (Debian's ``prometheus`` 2.42) scrapes a run through its ``file_sd`` targets.

What a site's operator does: point a scrape job at ``RUN/state/prometheus/*.json``, run a
workflow, and read the numbers back through Prometheus's HTTP API. At the end they must
match ``summary.json`` (tasks by status, tokens, LLM answers per pool) and the tool pools'
own counts (sessions opened, calls); while it ran, LLM requests were in flight in each
pool. Every series the Grafana dashboard queries must be among those scraped.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

PROMETHEUS = Path("/usr/bin/prometheus")
pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(not PROMETHEUS.exists(), reason="no /usr/bin/prometheus: apt-get install -y prometheus"),
]
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SCRAPE_MS = 500  # Prometheus's own durations: "500ms"
SCRAPE_S = SCRAPE_MS / 1000
# tau2 on the mock domain (tool pools), the user simulator on its own LLM pool; the simulator
# at real speed (time_scale=1) and the assistant slower (0.3), so that requests and tool sessions
# are open at some scrapes (a mock session lasts 0.4-2 s at real speed: CI once saw none open
# at any scrape; at 0.3 they last 0.7-4.6 s), and tasks cut at 16 steps (the longest one had
# 42 turns: the run's time); the peers' stats every 0.25 s; /metrics kept up 8 scrape
# intervals after the end.
RUN = ("workflow=tau2", "workflow.domain=mock", "workflow.max_steps=16",
       "llms.user_sim.model=sim-llama-3.1-70b", "llms.user_sim.replicas=1", "llms.user_sim.time_scale=1",
       "workflow.role_llm.user=user_sim", "llm.time_scale=0.3", "run.progress=false", "run.lease_renew_s=0.25",
       f"run.metrics_linger_s={8 * SCRAPE_S}")


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> object:
        with LOCAL.open(f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=30) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[tuple[str, ...], float]:
        """``expr``'s instant vector now, keyed by its labels' values (sorted by label name)."""
        result = self.get("/api/v1/query", query=expr)
        return {tuple(v for _, v in sorted(s["metric"].items())): float(s["value"][1]) for s in result["result"]}

    def one(self, expr: str) -> float:
        values = list(self.query(expr).values())
        assert len(values) == 1, (expr, values)
        return values[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prom") / "run"


@pytest.fixture(scope="module")
def prometheus(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: {SCRAPE_MS}ms
  scrape_timeout: {SCRAPE_MS}ms
scrape_configs:
  - job_name: slurmgen
    file_sd_configs:
      - files: ["{run_dir}/state/prometheus/*.json"]
        refresh_interval: 1s
""")
    port = free_port()
    log = (home / "prometheus.log").open("wb")
    proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with LOCAL.open(f"{url}/-/ready", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert proc.poll() is None, (home / "prometheus.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "prometheus did not become ready in 60 s"
        time.sleep(0.2)
    yield Prometheus(url)
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def scraped(prometheus: Prometheus, run_dir: Path) -> dict:
    """Run the workflow while Prometheus scrapes it; return its summary.json (and "window": its start, end)."""
    t0, started = time.monotonic(), time.time()
    proc = subprocess.run([sys.executable, "-m", "slurmgen", *RUN, f"run.dir={run_dir}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"\nworkflow run under Prometheus: {time.monotonic() - t0:.1f} s")
    time.sleep(2 * SCRAPE_S)  # the last scrapes are in the TSDB's head
    return {**json.loads((run_dir / "summary.json").read_text()), "window": (started, time.time())}


def last(expr: str) -> str:
    """The last value each series had (targets are gone once the run ended)."""
    return f"last_over_time({expr}[15m])"


def test_tasks_and_tokens_match_the_summary(prometheus: Prometheus, scraped: dict) -> None:
    done = prometheus.query(f"sum by (status) ({last('slurmgen_driver_tasks_done_total')})")
    assert done == {("ok",): scraped["tasks_ok"], ("rejected",): scraped["tasks_rejected"],
                    ("failed",): scraped["tasks_failed"]}
    assert prometheus.one(f"sum({last('slurmgen_driver_tasks_expected')})") == scraped["expected_tasks"]
    tokens = prometheus.query(f"sum by (kind) ({last('slurmgen_driver_tokens_total')})")
    assert tokens == {("completion",): scraped["completion_tokens"], ("prompt",): scraped["prompt_tokens"]}
    for kind in ("prompt", "completion"):  # the peers' per-role counters add up to the same
        by_role = prometheus.query(f"sum by (role) ({last(f'slurmgen_{kind}_tokens_total')})")
        want = {(role,): u[f"{kind}_tokens"] for role, u in scraped["usage_by_role"].items()}
        assert {k: v for k, v in by_role.items() if v} == want, kind


def test_llm_answers_per_pool_match_the_summary_and_were_in_flight(prometheus: Prometheus, scraped: dict) -> None:
    answered = prometheus.query(f"sum by (pool) ({last('slurmgen_llm_ok_total')})")
    assert answered == {(pool,): u["answered"] for pool, u in scraped["usage_by_pool"].items()}
    assert set(answered) == {("default",), ("user_sim",)}
    in_flight = prometheus.query("max by (pool) (max_over_time(slurmgen_llm_outstanding[15m]))")
    print(f"most LLM requests in flight at a scrape, per pool: {in_flight}")
    assert set(in_flight) == set(answered) and all(v > 0 for v in in_flight.values()), in_flight


def test_tool_sessions_match_the_tool_pools_own_counts(prometheus: Prometheus, scraped: dict,
                                                       run_dir: Path) -> None:
    pools = [json.loads(p.read_text()) for p in sorted((run_dir / "state").glob("stats-toolpool-*.json"))]
    assert len(pools) == 2 and sum(p["opened"] for p in pools) > 0
    ops = prometheus.query(f"sum by (kind) ({last('slurmgen_tool_sessions_total')})")
    assert ops[("open",)] == sum(p["opened"] for p in pools)
    assert ops[("call",)] == sum(p["calls"] for p in pools)
    assert ops[("close",)] == ops[("open",)] and ops[("lost",)] == 0
    opened = 'sum(slurmgen_tool_sessions_total{kind="open"}) - sum(slurmgen_tool_sessions_total{kind="close"})'
    most = prometheus.one(f"max_over_time(({opened})[15m:{SCRAPE_MS}ms])")
    print(f"most tool sessions open at a scrape: {most:.0f}")
    assert most > 0


def dashboard_series(expr: str) -> set[str]:
    names = set(re.findall(r"\b(slurmgen_[a-z_]+)", expr))
    for chosen in re.findall(r'__name__=~?"([^"]+)"', expr):
        names.add(chosen)  # one name, or "a|b" (either is enough: vLLM renamed it)
    return names


def test_every_dashboard_query_refers_to_scraped_series(prometheus: Prometheus, scraped: dict,
                                                         run_dir: Path) -> None:
    found = set(prometheus.get("/api/v1/label/__name__/values"))
    dashboard = json.loads((REPO / "tools" / "grafana" / "slurmgen-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    missing = {}
    for expr in exprs:
        for name in dashboard_series(expr):
            if not any(n in found for n in name.split("|")):
                missing[name] = expr
    assert not missing, f"series the dashboard queries that no target served: {missing}"
    runs = prometheus.get("/api/v1/label/run/values")
    assert runs == [run_dir.name]  # the dashboard's $run variable has its value
    start, end = scraped["window"]
    empty = []
    for expr in exprs:  # as Grafana sends it over the run's time range
        query = expr.replace("$run", run_dir.name).replace("$__rate_interval", f"{4 * SCRAPE_MS}ms")
        result = prometheus.get("/api/v1/query_range", query=query, start=f"{start:.3f}", end=f"{end:.3f}",
                                step=f"{SCRAPE_S}")
        if not result["result"]:
            empty.append(expr)
    assert not empty, f"dashboard queries with no data over the run: {empty}"
