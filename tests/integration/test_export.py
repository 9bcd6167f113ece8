"""`slurmgen export`: a run's records become a training set a trainer can load."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from slurmgen.exitcodes import Exit
from tests.conftest import REPO, read_records, run_slurmgen

datasets = pytest.importorskip("datasets")


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slurmgen", "export", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def nr_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("nr") / "run"
    run_slurmgen("workflow=nr", "dataset.limit=60", f"run.dir={run_dir}", "llm.time_scale=300")
    return run_dir


def test_parquet_sft_has_one_row_per_ok_record_and_loads_with_datasets(nr_run, tmp_path):
    out = tmp_path / "train.parquet"
    proc = export(nr_run, "--format", "parquet", "--shape", "sft", "--out", out)
    assert proc.returncode == 0, proc.stderr
    ok = [r for r in read_records(nr_run) if r.status == "ok"]
    train = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert train.num_rows == len(ok) > 0
    assert sorted(train["task_id"]) == sorted(r.task_id for r in ok)
    for row, rec in zip(sorted(train, key=lambda r: r["task_id"]), sorted(ok, key=lambda r: r.task_id)):
        question = json.loads(bytes(rec.output))["question"]
        assert row["prompt"] == question["exam_question"] and row["completion"].endswith(question["independent_answer"][-1])
    card = (tmp_path / "train.parquet.README.md").read_text()
    summary = json.loads((nr_run / "summary.json").read_text())
    assert f"| rows written | {len(ok)} |" in card and f"{summary['tasks_ok']} / {summary['tasks_rejected']}" in card
    assert "workflow:" in card  # the run's config


def test_hf_chat_and_jsonl_records(nr_run, tmp_path):
    hf = tmp_path / "chat"
    assert export(nr_run, "--format", "hf", "--shape", "chat", "--status", "any", "--out", hf).returncode == 0
    chat = datasets.load_from_disk(str(hf))
    talked = [r for r in read_records(nr_run) if any(t.content for t in r.history)]  # not rejected before any LLM call
    assert chat.num_rows == len(talked) > 0
    assert {"role", "content"} == set(chat[0]["messages"][0])
    assert (hf / "README.md").exists()
    out = tmp_path / "records.jsonl"
    assert export(nr_run, "--out", out, "--status", "rejected").returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["status"] == "rejected" and r["input"]["metadata"] for r in rows)


def test_a_live_run_is_exported_up_to_its_last_complete_line(nr_run, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(nr_run, live)
    (live / "summary.json").unlink()
    shard = sorted((live / "results").glob("*.jsonl"))[0]
    whole = len(read_records(live))
    with open(shard, "ab") as f:
        f.write(b'{"task_id": "half-writ')
    out = tmp_path / "all.jsonl"
    proc = export(live, "--status", "any", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == whole
    assert "had not finished" in (tmp_path / "all.jsonl.README.md").read_text()


def test_refusals_say_what_to_do(nr_run, tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text("mine\n")
    proc = export(nr_run, "--out", out)
    assert proc.returncode == Exit.REFUSED and "--force" in proc.stderr and out.read_text() == "mine\n"
    proc = export(tmp_path, "--out", tmp_path / "y.jsonl")
    assert proc.returncode == Exit.REFUSED and "not a run directory" in proc.stderr
    proc = export(nr_run, "--status", "okk", "--out", tmp_path / "z.jsonl")
    assert proc.returncode == Exit.REFUSED and "unknown status okk; valid: ok, rejected, failed" in proc.stderr
    assert not (tmp_path / "z.jsonl").exists()
    proc = export(nr_run, "--out", tmp_path / "train.txt")
    assert proc.returncode == Exit.REFUSED and "pass --format (jsonl, parquet, hf)" in proc.stderr


def test_the_format_follows_the_suffix_of_out(nr_run, tmp_path):
    out = tmp_path / "x.parquet"
    proc = export(nr_run, "--out", out, "--status", "any")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:4] == b"PAR1" and pq.read_table(out).num_rows == len(read_records(nr_run))


def test_coral_sft_holds_the_agreed_answers(tmp_path):
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=coral", "dataset.limit=30", f"run.dir={run_dir}", "llm.time_scale=300")
    out = tmp_path / "coral.jsonl"
    assert export(run_dir, "--shape", "sft", "--out", out).returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    agreed = {r.task_id: json.loads(bytes(r.output)) for r in read_records(run_dir)
              if r.status == "ok" and json.loads(bytes(r.output))["agreement"]}
    assert rows and {r["task_id"] for r in rows} <= set(agreed)
    for row in rows:
        state = agreed[row["task_id"]]
        assert {row["answer"]} == set(state["matched_answer"].values())
        assert f"({row['answer']})" in row["completion"] or row["answer"] in row["completion"]
        assert row["correct"] == (row["answer"] == state["gold"])
