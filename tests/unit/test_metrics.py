"""The Prometheus exporter: its HTTP endpoint, counters that move, its file_sd target."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from slurmgen.proc.metrics import Exporter, sd_dir
from slurmgen.protocol import Orchestrator, Usage
from slurmgen.run.progress import Counts


def scrape(exporter: Exporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(exporter.url, timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def exporter(tmp_path: Path):
    ex = Exporter("peer-3", tmp_path / "run", "127.0.0.1")
    yield ex
    ex.close()


def test_target_file_is_file_sd(exporter: Exporter, tmp_path: Path) -> None:
    path = tmp_path / "run" / "state" / "prometheus" / "peer-3.json"
    assert exporter.target_files == [path] and sd_dir(tmp_path / "run") == path.parent
    groups = json.loads(path.read_text())
    assert isinstance(groups, list) and len(groups) == 1
    (group,) = groups
    assert set(group) == {"targets", "labels"}
    assert group["targets"] == [f"127.0.0.1:{exporter.port}"] and exporter.port > 0
    labels = group["labels"]
    assert labels["process"] == "peer-3" and labels["component"] == "peer" and labels["run"] == "run"
    assert all(isinstance(v, str) for v in labels.values())  # file_sd wants string labels
    assert not any(p.name.startswith(".") for p in path.parent.iterdir())  # no temp file left


def test_peer_counters_move(exporter: Exporter) -> None:
    m = exporter.peer(roles=("filter", "score"))
    before = scrape(exporter)
    assert value(before, "slurmgen_tasks_issued_total") == 0
    assert value(before, "slurmgen_role_latency_seconds_count", role="score") == 0  # pre-bound

    orch = Orchestrator(task_id="r:0", row_id="r", trial=0, seed=1, origin="peer-3", next_role="score")
    mark = m.role_start(orch)
    orch.usage["score"] = Usage(prompt_tokens=120, completion_tokens=30, requests=1)
    m.role_end(mark, orch)
    mark = m.role_start(orch)  # the same role again: only the new tokens count
    orch.usage["score"] = Usage(prompt_tokens=200, completion_tokens=40, requests=2)
    m.role_end(mark, orch)

    stats = {"issued": 5, "written": 3, "reissued": 1, "retried": 0, "duplicates": 2, "in_flight": 2, "held": 4,
             "received": {"orch": 7, "credit": 6, "bytes_orch_sent": 900},
             "llm": {"http://a:1": {"requests": 9, "ok": 8, "errors": 1, "retries": 1, "latency_s": 2.5,
                                    "pool": "teacher", "model": "m70"}},
             "llm_outstanding": {"http://a:1": 3}, "refused_frames": 0, "cross_node": {"bytes_sent": 80},
             "tools": {"open": 4, "call": 11, "close": 3, "lost": 0}}
    m.sync(stats)
    m.sync({**stats, "issued": 6, "received": {"orch": 9, "credit": 6, "bytes_orch_sent": 900},
            "cross_node": {"bytes_sent": 200}})
    after = scrape(exporter)
    assert value(after, "slurmgen_tasks_issued_total") == 6
    assert value(after, "slurmgen_tasks_written_total") == 3
    assert value(after, "slurmgen_tasks_reissued_total") == 1
    assert value(after, "slurmgen_tasks_duplicates_total") == 2
    assert value(after, "slurmgen_tasks_in_flight") == 2
    assert value(after, "slurmgen_hops_received_total", type="orch") == 9
    assert value(after, "slurmgen_hops_received_total", type="credit") == 6
    assert value(after, "slurmgen_wire_bytes_total", kind="bytes_orch_sent") == 900
    assert value(after, "slurmgen_cross_node_total", kind="bytes_sent") == 200
    assert value(after, "slurmgen_llm_requests_total", endpoint="http://a:1", pool="teacher") == 9
    assert value(after, "slurmgen_llm_errors_total", endpoint="http://a:1", pool="teacher") == 1
    assert value(after, "slurmgen_llm_retries_total", endpoint="http://a:1", pool="teacher") == 1
    assert value(after, "slurmgen_llm_latency_seconds_total", endpoint="http://a:1", pool="teacher") == 2.5
    assert value(after, "slurmgen_llm_outstanding", endpoint="http://a:1", pool="teacher") == 3
    assert value(after, "slurmgen_tool_sessions_total", kind="open") == 4
    assert value(after, "slurmgen_tool_sessions_total", kind="call") == 11
    assert value(after, "slurmgen_role_latency_seconds_count", role="score") == 2
    assert value(after, "slurmgen_prompt_tokens_total", role="score") == 200
    assert value(after, "slurmgen_completion_tokens_total", role="score") == 40
    assert value(after, "slurmgen_prompt_tokens_total", role="filter") == 0


def test_driver_metrics(tmp_path: Path) -> None:
    ex = Exporter("driver", tmp_path / "run", "127.0.0.1")
    try:
        initial = Counts(done=2, ok=2, prompt_tokens=100, completion_tokens=10)
        d = ex.driver(expected=10, initial=initial)
        counts = Counts(done=5, ok=3, rejected=1, failed=1, prompt_tokens=400, completion_tokens=50)
        counts.failure_reasons["llm_error"] = 1
        d.update(counts)
        s = scrape(ex)
        assert value(s, "slurmgen_driver_tasks_expected") == 10
        assert value(s, "slurmgen_driver_tasks_done_total", status="ok") == 3
        assert value(s, "slurmgen_driver_tasks_done_total", status="failed") == 1
        assert value(s, "slurmgen_driver_failures_total", reason="llm_error") == 1
        assert value(s, "slurmgen_driver_tokens_total", kind="prompt") == 400
        assert value(s, "slurmgen_driver_tokens_per_second") > 0  # 340 tokens since the bar's start
    finally:
        ex.close()


def test_close_withdraws_target_and_stops_serving(tmp_path: Path) -> None:
    extra = tmp_path / "site-sd"
    ex = Exporter("driver", tmp_path / "run", "127.0.0.1", sd_extra_dir=extra)
    url = ex.url
    assert (extra / "run-driver.json").exists()
    ex.close()
    assert not list(sd_dir(tmp_path / "run").glob("*.json")) and not list(extra.glob("*.json"))
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_disabled_exporter_serves_nothing(tmp_path: Path) -> None:
    ex = Exporter("peer-0", tmp_path / "run", enabled=False)
    m = ex.peer(roles=("a",))
    m.sync({"issued": 1})
    assert ex.url == "" and ex.target_files == [] and not (tmp_path / "run").exists()
    ex.close()


def test_two_exporters_in_one_process(tmp_path: Path) -> None:
    a, b = Exporter("peer-0", tmp_path / "run"), Exporter("peer-1", tmp_path / "run")
    try:
        a.peer().issued.inc(3)
        b.peer()
        assert a.port != b.port
        assert value(scrape(a), "slurmgen_tasks_issued_total") == 3
        assert value(scrape(b), "slurmgen_tasks_issued_total") == 0
    finally:
        a.close()
        b.close()


def test_grafana_dashboard_uses_only_exported_metrics(tmp_path: Path) -> None:
    """Every slurmgen_* name the dashboard queries is one the exporters serve."""
    import re

    from tests.conftest import REPO

    dashboard = json.loads((REPO / "tools" / "grafana" / "slurmgen-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    ids = [p["id"] for p in dashboard["panels"]]
    assert exprs and len(ids) == len(set(ids))
    used = {n for e in exprs for n in re.findall(r"\bslurmgen_[a-z_]+", e)}
    ex = Exporter("peer-0", tmp_path / "run", "127.0.0.1")
    try:
        peer, driver = ex.peer(roles=("r",)), ex.driver(expected=1)
        peer.sync({"received": {"orch": 1}, "llm": {"http://a:1": {"requests": 1}}, "llm_outstanding": {"http://a:1": 0}})
        driver.failures["llm_error"].inc()
        served = {name for name, _ in scrape(ex)}
    finally:
        ex.close()
    assert used <= served, used - served
    assert any("vllm:num_requests_running" in e for e in exprs)
    assert any("vllm:kv_cache_usage_perc" in e for e in exprs)
    assert any("histogram_quantile(0.99" in e for e in exprs)


def test_an_address_that_cannot_be_bound_leaves_metrics_off(tmp_path: Path) -> None:
    ex = Exporter("peer-0", tmp_path / "run", "203.0.113.9")  # TEST-NET-3: not an address of this host
    ex.peer().issued.inc()  # still usable
    assert ex.url == "" and ex.target_files == []
    ex.close()
