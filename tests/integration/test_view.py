"""``slurmgen view RUN_DIR`` on a real tau2 run, read in a real headless Chromium.

The user's side: they type ``slurmgen view RUN --port N``, open the page, filter the list,
open a record. The counts the page shows are checked against the records file, a tau2
record's conversation against its JSON (tool calls, tool results, reward breakdown), and
screenshots of both for content (PNG written, not blank).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from slurmgen.records import Record
from tests.conftest import REPO, read_records, run_slurmgen
from tests.integration.test_report import chromium, needs_chromium

# 9 mock tasks x 2 trials; the user simulator on its own LLM pool ("user_sim"), so that
# records differ in trial, pool, reward and reason.
TAU2 = ("workflow=tau2", "workflow.domain=mock", "run.trials=2", "workflow.max_steps=40",
        "llms.user_sim.model=sim-llama-3.1-70b", "llms.user_sim.replicas=1", "llms.user_sim.time_scale=200",
        "workflow.role_llm.user=user_sim", "llm.time_scale=200", "run.progress=false")
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost: never through a proxy


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("view") / "run"
    run_slurmgen(*TAU2, f"run.dir={run_dir}", timeout=300)
    return run_dir


@pytest.fixture(scope="module")
def records(run_dir: Path) -> list[Record]:
    recs = read_records(run_dir)
    assert len(recs) == 18
    return recs


class Viewer:
    def __init__(self, run_dir: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "slurmgen", "view", str(run_dir), "--port", "0"],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:  # "indexed ..." then "http://127.0.0.1:PORT/"
            lines.append(line)
            if found := re.search(r"(http://\S+/)", line):
                self.url = found.group(1)
                return
        raise AssertionError(f"slurmgen view did not serve: {lines} {self.proc.stderr.read() if self.proc.stderr else ''}")

    def api(self, path: str) -> dict:
        with LOCAL.open(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def viewer(run_dir: Path) -> Iterator[Viewer]:
    v = Viewer(run_dir)
    yield v
    v.stop()


def dom(url: str, tmp: Path) -> str:
    """The page at ``url`` once its script has rendered (``data-ready`` on <body>)."""
    proc = chromium("--dump-dom", url, tmp=tmp)
    assert 'data-ready="1"' in proc.stdout, f"page not rendered (rc {proc.returncode}):\n{proc.stdout[-3000:]}"
    return proc.stdout


FILTERS: list[tuple[str, Callable[[Record], bool]]] = [
    ("reason=user_stop", lambda r: r.reason == "user_stop"),
    ("trial=1", lambda r: r.trial == 1),
    ("metric=reward&min=1", lambda r: r.metrics.get("reward", -1) >= 1),
    ("status=ok", lambda r: r.status == "ok"),
    ("role=env", lambda r: any(t.role == "env" for t in r.history)),
    ("pool=default", lambda r: any(t.pool == "default" for t in r.history) or
     any(u.pool == "default" for u in r.usage.values())),
    ("q=update_task_status", lambda r: b"update_task_status" in _line(r)),
]


def _line(r: Record) -> bytes:
    return msgspec.json.encode(r).lower()


@needs_chromium
@pytest.mark.parametrize("query,keep", FILTERS[:3], ids=[q for q, _ in FILTERS[:3]])
def test_rows_after_a_filter_in_chromium_match_the_records_file(viewer: Viewer, records: list[Record],
                                                                 tmp_path: Path, query: str, keep: Callable) -> None:
    expected = sum(1 for r in records if keep(r))
    assert 0 < expected < len(records), query  # the filter does filter
    page = dom(f"{viewer.url}?{query}", tmp_path)
    shown = re.search(r'<b id="total">(\d+)</b>', page)
    assert shown and int(shown.group(1)) == expected, (query, shown and shown.group(0))
    assert len(re.findall(r'<tr data-n="\d+"', page)) == expected


@pytest.mark.parametrize("query,keep", FILTERS, ids=[q for q, _ in FILTERS])
def test_api_counts_match_the_records_file(viewer: Viewer, records: list[Record], query: str,
                                           keep: Callable) -> None:
    page = viewer.api(f"api/rows?{query}&limit=500")
    want = sorted(r.task_id for r in records if keep(r))
    assert sorted(row["task_id"] for row in page["rows"]) == want, query
    if "q=" not in query:
        assert page["total"] == len(want)


def _has_breakdown(rec: dict) -> bool:
    """tau2's reward came with its breakdown (one mock task's evaluator gives none)."""
    return any(t["role"] == "reward" and (t.get("data") or {}).get("reward_breakdown") for t in rec["history"])


def _record_with_tool_calls(viewer: Viewer) -> tuple[int, dict]:
    """A record with two tool calls and a reward breakdown (records come in completion order)."""
    for row in viewer.api("api/rows?role=env&limit=500")["rows"]:
        rec = viewer.api(f"api/record/{row['n']}")
        if sum(1 for t in rec["history"] if t.get("tool_calls")) >= 2 and _has_breakdown(rec):
            return row["n"], rec
    raise AssertionError("no record with two tool calls and a reward breakdown in the tau2 run")


@needs_chromium
def test_a_tau2_record_shows_its_conversation_tool_calls_and_reward(viewer: Viewer, tmp_path: Path) -> None:
    n, rec = _record_with_tool_calls(viewer)
    page = dom(f"{viewer.url}?record={n}", tmp_path)
    assert f">{html.escape(rec['task_id'])} <span" in page
    assert page.count('<div class="turn') == len(rec["history"])
    calls = [c["function"]["name"] for t in rec["history"] for c in (t.get("tool_calls") or [])]
    shown_calls = re.findall(r'<span class="name">([^<]+)</span>', page)
    assert shown_calls == calls
    results = [r for t in rec["history"] if t["role"] == "env" for r in t["data"]["results"]]
    assert page.count('class="tool-result') == len(results)
    for t in rec["history"]:
        if t.get("content"):
            assert html.escape(t["content"], quote=False) in page, t["content"]
        if t.get("pool"):
            assert f"<span>pool {t['pool']}</span>" in page
    reward = next(t["data"] for t in rec["history"] if t["role"] == "reward")
    for key in reward["reward_breakdown"]:
        assert f"<td>{key}</td>" in page
    assert "user_sim" in page and "default" in page  # the two pools that answered


@needs_chromium
def test_screenshots_of_a_record_and_of_a_filtered_list_are_not_blank(viewer: Viewer, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    image = pytest.importorskip("matplotlib.image")
    n, _ = _record_with_tool_calls(viewer)
    for name, query in (("record", f"record={n}"), ("list", "metric=reward&min=1")):
        shot = tmp_path / f"{name}.png"
        proc = chromium("--window-size=1200,1000", f"--screenshot={shot}", f"{viewer.url}?{query}", tmp=tmp_path)
        assert shot.exists(), proc.stderr[-3000:]
        pixels = image.imread(shot)[..., :3]
        assert pixels.shape[:2] == (1000, 1200)
        not_white = (pixels < 0.95).any(axis=-1).mean()
        colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
        print(f"{name} screenshot {shot}: {not_white:.1%} not white, {colours} colours")
        assert not_white > 0.05 and colours > 30, (name, not_white, colours)


@needs_chromium
def test_a_static_copy_opens_from_the_file_system(run_dir: Path, records: list[Record], tmp_path: Path) -> None:
    out = tmp_path / "copy"
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "view", str(run_dir), "--static", str(out),
                           "--limit", "6", "--where", "status=ok"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "6 of 18 matching records" in proc.stdout
    page = dom(out.joinpath("index.html").as_uri() + "?trial=1", tmp_path)
    copied = json.loads((out / "data.js").read_text().split("=", 1)[1].rstrip().rstrip(";"))
    assert len(copied["records"]) == 6
    expected = sum(1 for r in copied["records"].values() if r["trial"] == 1)
    assert re.search(rf'<b id="total">{expected}</b>', page)
    assert "static copy: the first 6 of 18 records matching status=ok" in page


def test_a_live_run_is_indexed_as_it_grows(run_dir: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    (live / "results").mkdir(parents=True)
    lines = (run_dir / "results" / "shard-00000.jsonl").read_bytes().splitlines(keepends=True)
    shard = live / "results" / "shard-00000.jsonl"
    shard.write_bytes(b"".join(lines[:2]) + lines[2][:40])  # a line still being written
    v = Viewer(live)
    try:
        assert v.api("api/meta")["records"] == 2
        with shard.open("ab") as f:
            f.write(lines[2][40:] + b"".join(lines[3:]))
        deadline = time.monotonic() + 10
        while v.api("api/meta")["records"] != len(lines):
            assert time.monotonic() < deadline, "the new records were not indexed"
            time.sleep(0.2)
        assert v.api("api/rows?limit=500")["total"] == len(lines)
        with pytest.raises(urllib.error.HTTPError, match="400"):
            v.api("api/rows?trial=first")
    finally:
        v.stop()
    assert (live / "state" / "view-index" / "offset.u8").stat().st_size == 8 * len(lines)


def test_not_a_run_directory_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "view", str(tmp_path / "nope")], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr

