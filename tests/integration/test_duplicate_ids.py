"""Rows sharing an id are refused before anything starts, or renamed / skipped on request;
every task id is written exactly once either way."""

import json

from slurmgen.exitcodes import Exit
from tests.conftest import read_records, run_slurmgen


def topics(tmp_path):
    """20 rows, 17 distinct ids: r03 three times (lines 4, 9, 15), r07 twice (lines 8, 18)."""
    ids = [f"r{i:02d}" for i in range(17)] + ["r03", "r07", "r03"]
    order = [0, 1, 2, 3, 4, 5, 6, 7, 17, 8, 9, 10, 11, 12, 16, 13, 14, 18, 15, 19]
    rows = [ids[k] for k in order]
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": f"Prove {i} is even. " * 30, "metadata": {"WARC-Record-ID": rid},
                                        "language_id_whole_page_fasttext": {"en": 0.9}}) + "\n"
                            for i, rid in enumerate(rows)))
    return data, rows


def test_duplicate_ids_are_refused_naming_them_and_their_lines(tmp_path):
    data, rows = topics(tmp_path)
    assert len(rows) == 20 and len(set(rows)) == 17
    proc = run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={tmp_path / 'run'}", check=False, timeout=60)
    assert proc.returncode == Exit.REFUSED, proc.stderr
    assert "3 rows repeat an id of an earlier row (2 ids)" in proc.stderr
    first_r03 = [i + 1 for i, r in enumerate(rows) if r == "r03"]
    assert f"'r03' on lines {', '.join(map(str, first_r03))}" in proc.stderr
    assert "dataset.on_duplicate=suffix" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_suffix_renames_later_rows_and_every_task_is_written_once(tmp_path):
    data, _rows = topics(tmp_path)
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", "dataset.on_duplicate=suffix",
                 "llm.time_scale=500", "run.trials=2", "run.peers=3")
    recs = read_records(run_dir)
    assert len(recs) == 40 and len({r.task_id for r in recs}) == 40
    assert {"r03", "r03#2", "r03#3", "r07", "r07#2"} <= {r.row_id for r in recs}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["duplicates_renamed"] == 3 and summary["tasks_total"] == 40


def test_skip_keeps_the_first_and_counts_the_rest(tmp_path):
    data, _ = topics(tmp_path)
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", "dataset.on_duplicate=skip",
                 "llm.time_scale=500", "run.peers=3")
    recs = read_records(run_dir)
    assert len(recs) == 17 and len({r.row_id for r in recs}) == 17
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["duplicates_skipped"] == 3 and summary["expected_tasks"] == 17
