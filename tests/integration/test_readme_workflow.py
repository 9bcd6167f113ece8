"""The README's custom-workflow example runs as written."""

import json
import os
import re
import subprocess
import sys

from tests.conftest import read_records, REPO


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- example: myflow.py -->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its example"
    return match.group(1)


def test_readme_custom_workflow_runs(tmp_path):
    (tmp_path / "myflow.py").write_text(readme_example())
    (tmp_path / "topics.jsonl").write_text("".join(json.dumps({"id": str(i), "topic": f"topic {i}"}) + "\n"
                                                   for i in range(30)))
    env = {**os.environ, "SLURMGEN_WORKFLOWS": "slogan=myflow:SloganConf", "PYTHONPATH": str(tmp_path)}
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "workflow=slogan", "dataset.path=topics.jsonl",
                           f"run.dir={run_dir}", "llm.time_scale=300", "workflow.max_words=10"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    recs = read_records(run_dir)
    assert len(recs) == 30
    assert {r.reason for r in recs} == {"short", "too_long"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 < summary["metrics"]["acceptance_rate"] < 1
    assert summary["usage_by_role"]["writer"]["requests"] == 30
