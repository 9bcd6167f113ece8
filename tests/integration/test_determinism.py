"""Same input and config give the same records, apart from timings and peer names."""

import json

import msgspec

from tests.conftest import read_records, run_slurmgen


def comparable(run_dir) -> dict[str, str]:
    out = {}
    for r in read_records(run_dir):
        for turn in r.history:
            turn.at = 0.0
        r.created_at = r.finished_at = 0.0
        r.peer = ""
        out[r.task_id] = msgspec.json.encode(r).decode()
    return out


def test_same_config_same_records(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run_dir, peers in ((a, 2), (b, 3)):
        run_slurmgen("workflow=nr", "dataset.limit=80", "run.trials=2", f"run.dir={run_dir}",
                     f"run.peers={peers}", "llm.time_scale=300")
    ra, rb = comparable(a), comparable(b)
    assert len(ra) == 160
    assert ra == rb


def test_a_huge_row_among_small_ones_is_processed(tmp_path):
    docs = []
    for i in range(6):
        words = 400_000 if i == 2 else 300
        docs.append({"text": "derive the bound on the integral step by step " * (words // 9),
                     "metadata": {"WARC-Record-ID": f"<urn:uuid:{i}>"},
                     "language_id_whole_page_fasttext": {"en": 0.99}})
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", "llm.time_scale=300")
    recs = {r.row_id: r for r in read_records(run_dir)}
    assert len(recs) == 6
    big = recs["<urn:uuid:2>"]
    assert big.status in ("ok", "rejected") and big.usage["filter"].prompt_tokens > 0
