import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from slurmgen.records import Record

REPO = Path(__file__).resolve().parent.parent


def run_slurmgen(*overrides: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m slurmgen`` as a user would; return the finished process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "slurmgen", *overrides], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"slurmgen failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_own_workflow(tmp_path: Path, spec: str, source: str, rows: list[dict], *overrides: str,
                     timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """A user's own workflow, as the README says to run one: ``spec`` is "name=module:WORKFLOW",
    ``source`` the module's text, ``rows`` its JSONL dataset; the run goes to tmp_path/run."""
    name, _, path = spec.partition("=")
    (tmp_path / f"{path.partition(':')[0]}.py").write_text(source)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "SLURMGEN_WORKFLOWS": spec, "PYTHONPATH": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "slurmgen", f"workflow={name}", "dataset.path=rows.jsonl",
                           f"run.dir={tmp_path / 'run'}", *overrides], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout)


def read_records(run_dir: Path, *, live: bool = False) -> list[Record]:
    """Every record under ``run_dir/results``.

    ``live=True`` is for polling a run that is still writing: the unfinished last line of a
    file (no newline yet) is not read. After a run, read strictly: a torn line is a defect.
    """
    dec = msgspec.json.Decoder(Record)
    out: list[Record] = []
    for path in sorted((run_dir / "results").glob("*.jsonl")):
        data = path.read_bytes()
        if live:
            data = data[:data.rfind(b"\n") + 1]
        out.extend(dec.decode(line) for line in data.splitlines() if line)
    return out


def count_records(run_dir: Path) -> int:
    """How many records a (possibly still running) run has written so far."""
    return len(read_records(run_dir, live=True)) if (run_dir / "results").exists() else 0


def slurmgen_processes(run_dir: Path) -> list[str]:
    """Command lines of live processes that serve this run directory."""
    out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run_dir) in line]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
