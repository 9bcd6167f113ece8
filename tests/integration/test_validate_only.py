"""run.validate_only=true checks config and dataset, reports bad rows by line, starts nothing."""

import json

from tests.conftest import run_slurmgen


def test_validate_only_lists_bad_rows_and_starts_nothing(tmp_path):
    good = {"text": "x " * 50, "metadata": {"WARC-Record-ID": "a"}, "language_id_whole_page_fasttext": {"en": 0.9}}
    lines = [json.dumps(good), "{broken", json.dumps({"text": "no id"}),
             json.dumps({**good, "metadata": {"WARC-Record-ID": "b"}})]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    proc = run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", "run.validate_only=true",
                        check=False, timeout=60)
    assert proc.returncode == 2
    assert "4 rows, 2 bad" in proc.stdout
    assert "line 2" in proc.stdout and "line 3" in proc.stdout and "`metadata`" in proc.stdout
    assert not run_dir.exists()
    data.write_text(json.dumps(good) + "\n")
    ok = run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", "run.validate_only=true",
                      timeout=60)
    assert "1 rows, 0 bad" in ok.stdout and "nothing was started" in ok.stdout
    assert not run_dir.exists()
