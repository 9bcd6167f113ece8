"""The viewer's index and filters on records files written here (no servers)."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from slurmgen.protocol import Turn, Usage
from slurmgen.records import Record
from slurmgen.view import index as index_mod
from slurmgen.view import query
from slurmgen.view.index import Index
from slurmgen.view.query import Filter, count, page


def record(i: int, rng: random.Random) -> Record:
    status = rng.choice(["ok", "ok", "rejected", "failed"])
    pool = rng.choice(["default", "big"])
    role = rng.choice(["teacher", "student"])
    metrics = {"score": float(rng.randint(0, 4))} if status != "failed" else {}
    if i >= 150:  # a metric first seen late: the records before have none
        metrics["late"] = float(i % 3)
    reason = "llm_error: HTTP 503" if status == "failed" else rng.choice(["agreement", "max_turns"])
    return Record(task_id=f"r{i}:{i % 2}", row_id=f"r{i}", trial=i % 2, status=status, reason=reason,
                  usage={role: Usage(prompt_tokens=10, completion_tokens=2, requests=1, pool=pool)},
                  metrics=metrics, history=[Turn(role=role, content=f"text of {i} needle{i % 7}", pool=pool)])


def write(run: Path, recs: list[Record], shards: int = 2) -> None:
    (run / "results").mkdir(parents=True, exist_ok=True)
    for k in range(shards):
        lines = b"".join(msgspec.json.encode(r) + b"\n" for r in recs[k::shards])
        (run / "results" / f"shard-{k:05d}.jsonl").write_bytes(lines)


@pytest.fixture
def recs() -> list[Record]:
    rng = random.Random(7)
    return [record(i, rng) for i in range(300)]


CASES = [
    (Filter(status="failed"), lambda r: r.status == "failed"),
    (Filter(reason="llm_error"), lambda r: r.reason.startswith("llm_error")),
    (Filter(role="student", pool="big"), lambda r: "student" in r.usage and r.usage[next(iter(r.usage))].pool == "big"),
    (Filter(trial=1, status="ok"), lambda r: r.trial == 1 and r.status == "ok"),
    (Filter(metric="score", min=2, max=3), lambda r: 2 <= r.metrics.get("score", -1) <= 3),
    (Filter(metric="late"), lambda r: "late" in r.metrics),
    (Filter(pool="nope"), lambda r: False),
]


@pytest.mark.parametrize("f,keep", CASES, ids=[str(i) for i in range(len(CASES))])
def test_filters_count_what_the_records_hold(tmp_path: Path, recs: list[Record], f: Filter, keep) -> None:
    write(tmp_path, recs)
    ix = Index(tmp_path)
    assert ix.refresh() == 300
    want = sorted(r.task_id for r in recs if keep(r))
    assert count(ix, f) == len(want)
    got = [row.task_id for off in range(0, 300, 40) for row in page(ix, f, off, 40).rows]
    assert sorted(got) == want and len(got) == len(set(got))


def test_built_in_small_chunks_equals_built_at_once(tmp_path: Path, recs: list[Record],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "a", recs)
    write(tmp_path / "b", recs)
    whole = Index(tmp_path / "a")
    whole.refresh()
    monkeypatch.setattr(index_mod, "CHUNK", 4096)  # many chunks: the "late" metric appears in a later one
    parts = Index(tmp_path / "b")
    parts.refresh()
    assert parts.meta.n == whole.meta.n == 300 and parts.meta.metrics == whole.meta.metrics
    for name in ("offset", "status", "roles", "pools", "m0", "m1"):
        assert parts.col(name).tobytes() == whole.col(name).tobytes(), name


def test_a_growing_shard_is_indexed_from_where_it_stopped(tmp_path: Path, recs: list[Record]) -> None:
    write(tmp_path, recs[:100], shards=1)
    shard = tmp_path / "results" / "shard-00000.jsonl"
    ix = Index(tmp_path)
    assert ix.refresh() == 100
    tail = b"".join(msgspec.json.encode(r) + b"\n" for r in recs[100:])
    with shard.open("ab") as f:
        f.write(tail[:-30])  # the last line is not finished yet
    assert ix.refresh() == 199
    with shard.open("ab") as f:
        f.write(tail[-30:])
    assert ix.refresh() == 1
    assert Index(tmp_path).refresh() == 0  # a new viewer reuses the index as kept
    assert msgspec.json.decode(ix.read(299), type=Record).task_id == recs[299].task_id


def test_a_replaced_shard_makes_it_start_over(tmp_path: Path, recs: list[Record]) -> None:
    write(tmp_path, recs, shards=1)
    ix = Index(tmp_path)
    ix.refresh()
    shard = tmp_path / "results" / "shard-00000.jsonl"
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in recs[:10]))
    replacement.replace(shard)
    ix.refresh()
    assert ix.meta.n == 10 and count(ix, Filter()) == 10


def test_an_unreadable_line_is_listed_as_such(tmp_path: Path, recs: list[Record]) -> None:
    write(tmp_path, recs[:3], shards=1)
    with (tmp_path / "results" / "shard-00000.jsonl").open("ab") as f:
        f.write(b'{"task_id": "broken\n')
    ix = Index(tmp_path)
    ix.refresh()
    rows = page(ix, Filter(status="unreadable")).rows
    assert len(rows) == 1 and rows[0].task_id.startswith("(unreadable line")


def test_text_search_pages_by_where_it_stopped(tmp_path: Path, recs: list[Record],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, recs)
    ix = Index(tmp_path)
    ix.refresh()
    monkeypatch.setattr(query, "SEARCH_BYTES", 5000)  # a few records per request
    want = sorted(r.task_id for r in recs if "needle3" in r.history[0].content)
    got, start, requests = [], 0, 0
    while start is not None:
        p = page(ix, Filter(q="NEEDLE3"), start, 50)
        got += [row.task_id for row in p.rows]
        start, requests = p.next, requests + 1
    assert sorted(got) == want and requests > 1


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not a run directory"):
        Index(tmp_path)


def test_a_run_this_user_cannot_write_is_indexed_in_the_cache(tmp_path: Path, recs: list[Record],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "theirs", recs[:5])
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    real_access = index_mod.os.access
    monkeypatch.setattr(index_mod.os, "access", lambda p, mode: False if "view-index" in str(p) and
                        "home" not in str(p) else real_access(p, mode))
    ix = Index(tmp_path / "theirs")
    assert ix.refresh() == 5
    assert ix.dir.parent == tmp_path / "home" / ".cache" / "slurmgen" / "view-index"
    assert ix.dir.name.startswith("theirs-")
