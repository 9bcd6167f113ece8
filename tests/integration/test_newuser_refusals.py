"""What a new user types wrong, and what slurmgen answers: exit 2 before anything starts, with
a message naming the problem and what to do (issue 24, items 2, 4, 5, 6, 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slurmgen.exitcodes import Exit
from tests.conftest import REPO, slurmgen_processes


def sg(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slurmgen", *args], check=False, capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == Exit.REFUSED, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    return proc.stderr


def test_workflow_name_does_not_choose_a_workflow(tmp_path):
    run_dir = tmp_path / "run"
    err = refused(sg("workflow=nr", "workflow.name=nrr", f"run.dir={run_dir}"),
                  "workflow.name=nrr", "workflow=NAME", "coral, nr, tau2")
    assert "OmegaConf" not in err and "full_key" not in err
    refused(sg("workflow=nr", "workflow.name=coral", f"run.dir={run_dir}"), "workflow=coral")
    refused(sg("workflow=nrr", f"run.dir={run_dir}"), "unknown workflow 'nrr'", "coral, nr, tau2")
    assert not run_dir.exists() and slurmgen_processes(run_dir) == []


@pytest.mark.parametrize(("override", "kind"), [("dataset.limit=abc", "int"), ("run.peers=two", "int"),
                                                ("llm.replicas=1.5", "int"), ("run.curve=maybe", "bool")])
def test_a_wrong_typed_override_is_refused_naming_the_type(tmp_path, override, kind):
    run_dir = tmp_path / "run"
    key = override.split("=")[0]
    refused(sg("workflow=nr", override, f"run.dir={run_dir}"), f"{override}:", f"({key} is {kind})")
    assert not run_dir.exists()


def test_a_run_dir_that_cannot_be_written_is_refused(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    refused(sg("workflow=nr", "dataset.limit=5", f"run.dir={a_file}"), f"run.dir={a_file} is a file",
            "choose another run.dir")
    assert a_file.read_text() == "mine\n"
    if os.geteuid() == 0:  # root writes through permission bits; /sys refuses even root
        unwritable = Path("/sys/slurmgen-test") / "run"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        unwritable = locked / "run"
    refused(sg("workflow=nr", "dataset.limit=5", f"run.dir={unwritable}"), f"run.dir={unwritable} cannot be written",
            "choose a run.dir on a filesystem you can write")


def test_a_json_array_is_refused_with_how_to_convert_it(tmp_path):
    rows = [{"text": f"page {i} " * 30, "metadata": {"WARC-Record-ID": f"<urn:{i}>"}} for i in range(20)]
    for name, text in (("one-line.json", json.dumps(rows)), ("pretty.json", json.dumps(rows, indent=2))):
        (tmp_path / name).write_text(text)
        err = refused(sg("workflow=nr", f"dataset.path={name}", f"run.dir={tmp_path / 'run'}", cwd=tmp_path),
                      "holds one JSON array", "jq -c '.[]'")
        assert f"dataset.path={tmp_path / name.replace('.json', '.jsonl')}" in err
    assert not (tmp_path / "run").exists()
    hint = err.split("(or: ")[1].split("), then")[0]
    subprocess.run(["bash", "-c", hint], check=True, cwd=tmp_path)
    out = tmp_path / "pretty.jsonl"
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows  # the hint's command works


def test_a_parquet_schema_that_cannot_give_the_rows_is_refused_up_front(tmp_path):
    meta = [{"WARC-Record-ID": f"<urn:{i}>"} for i in range(3)]
    pq.write_table(pa.table({"txt": ["a page"] * 3, "metadata": meta}), tmp_path / "renamed.parquet")
    pq.write_table(pa.table({"text": [1, 2, 3], "metadata": meta}), tmp_path / "ints.parquet")
    refused(sg("workflow=nr", "dataset.path=renamed.parquet", f"run.dir={tmp_path / 'a'}", cwd=tmp_path),
            "no column 'text' (required)", "workflow.row=")
    refused(sg("workflow=nr", "dataset.path=ints.parquet", f"run.dir={tmp_path / 'b'}", cwd=tmp_path),
            "column 'text' is int64, the row type wants str")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_help_lists_the_commands_then_the_config():
    proc = sg("--help")
    assert proc.returncode == 0, proc.stderr
    head = proc.stdout.split("== Configuration groups ==")[0]
    for command in ("status", "export", "view", "plan", "report", "render"):
        assert f"\n  {command}  " in head, head
    assert "workflow: coral, nr, tau2" in proc.stdout  # Hydra's part follows
    for command in ("status", "export", "report", "view", "plan"):
        sub = sg(command, "--help")
        assert sub.returncode == 0 and f"usage: slurmgen {command}" in sub.stdout, sub.stdout + sub.stderr
    assert "--output {text,json}" in sg("status", "--help").stdout
