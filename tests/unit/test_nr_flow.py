"""NR transitions, metrics, config and the built-in dataset (unit tier)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from omegaconf import OmegaConf

from slurmgen.agents.nr import WORKFLOW, corpus, data
from slurmgen.agents.nr.conf import NRConf
from slurmgen.agents.nr.data import Document
from slurmgen.agents.nr.flow import metrics, transition
from slurmgen.agents.nr.state import NRState
from slurmgen.config.workflows import get_workflow
from slurmgen.protocol import Orchestrator, Turn, Usage
from slurmgen.records import Record
from slurmgen.workflow import Status, Task, finish


def orch(*roles: str, status: str = "running") -> Task[Document, NRState]:
    msg = Orchestrator(task_id="r:0", row_id="r", trial=0, seed=1, origin="p0")
    msg.history = [Turn(role=role) for role in roles]
    msg.status = Status(status)
    return Task(msg, None, NRState())  # type: ignore[arg-type]  # the transition reads no row


# --- transition ----------------------------------------------------------------


def test_transition_runs_filter_score_question_in_order() -> None:
    assert transition(orch()) == "filter"
    assert transition(orch("filter")) == "score"
    assert transition(orch("filter", "score")) == "question"
    assert transition(orch("filter", "score", "question")) is None


@pytest.mark.parametrize("roles", [(), ("filter",), ("filter", "score"), ("filter", "score", "question")])
@pytest.mark.parametrize("status", ["rejected", "ok", "failed"])
def test_terminal_status_ends_the_task(roles: tuple[str, ...], status: str) -> None:
    assert transition(orch(*roles, status=status)) is None


def test_rejection_after_filter_stops_before_score() -> None:
    task = orch("filter")
    finish(task, Status.REJECTED, "filter_by_classifier")
    assert transition(task) is None


# --- metrics -------------------------------------------------------------------


def record(status: str, reason: str, prompt: int = 0, completion: int = 0) -> Record:
    usage = {"filter": Usage(prompt_tokens=prompt, completion_tokens=completion, requests=1)}
    return Record(task_id=f"{reason}:0", row_id=reason, trial=0, status=status, reason=reason, usage=usage)


def test_metrics_counts_rates_and_tokens() -> None:
    records = [
        record("ok", "success", 100, 50),
        record("ok", "success", 300, 150),
        record("rejected", "filter_by_en"),
        record("rejected", "filter_by_score", 200, 100),
        record("failed", "llm_error", 50, 0),
    ]
    out = metrics(records)
    assert out["total_input"] == 5
    assert out["acceptance_rate"] == pytest.approx(0.4)
    assert out["conv_err"] == 1
    assert out["tokens_per_task"] == pytest.approx((150 + 450 + 0 + 300 + 50) / 5)
    assert out["completion_tokens_per_task"] == pytest.approx(300 / 5)
    assert out["reason/success"] == 2
    assert out["reason/filter_by_en"] == 1
    assert out["reason/filter_by_score"] == 1
    assert out["reason/llm_error"] == 1
    assert out["reason/filter_by_question_wo_json"] == 0  # every known reason is reported


def test_metrics_of_nothing() -> None:
    out = metrics([])
    assert out["total_input"] == 0 and out["acceptance_rate"] == 0 and out["tokens_per_task"] == 0


# --- config ------------------------------------------------------------------


def test_conf_defaults_match_the_reference() -> None:
    conf = OmegaConf.structured(NRConf)
    assert conf.name == "nr" and conf.filter_en == 0.8
    fs = conf.filter_sampling
    assert (fs.temperature, fs.top_p, fs.max_tokens) == (1.0, 0.95, 8)
    assert (conf.score_sampling.temperature, conf.score_sampling.max_tokens) == (0.2, 10240)
    assert (conf.question_sampling.temperature, conf.question_sampling.max_tokens) == (0.0, 20480)


def test_the_workflow_is_registered_by_its_entry_point() -> None:
    workflow = get_workflow("nr")
    assert workflow is WORKFLOW and workflow.conf is NRConf
    assert workflow.row is Document and workflow.state is NRState and workflow.transition is transition
    assert list(workflow.roles) == ["filter", "score", "question"]


# --- built-in dataset ----------------------------------------------------------


@pytest.fixture(scope="module")
def builtin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        return Path(data.builtin_path())


def test_builtin_dataset_shape(builtin: Path) -> None:
    assert builtin.name == "nr-builtin-v1.jsonl" and builtin.parent.name == "slurmgen"
    docs = [msgspec.json.decode(line, type=Document) for line in builtin.read_bytes().splitlines()]
    assert len(docs) == data.BUILTIN_SIZE
    assert len({d.row_id() for d in docs}) == len(docs)
    assert all(d.row_id().startswith("<urn:uuid:") and d.url.startswith("https://") for d in docs)
    below = sum(d.en() < 0.8 for d in docs)
    assert 0.10 * len(docs) <= below <= 0.15 * len(docs)
    words = [len(d.text.split()) for d in docs]
    assert min(words) >= corpus.MIN_WORDS and max(words) <= corpus.MAX_WORDS + 60
    assert sum(w < 200 for w in words) > 100 and sum(w > 1500 for w in words) > 50


def test_builtin_dataset_is_deterministic_and_generated_once(
    builtin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = builtin.stat().st_mtime_ns
    monkeypatch.setenv("XDG_CACHE_HOME", str(builtin.parent.parent))
    assert data.builtin_path() == str(builtin) and builtin.stat().st_mtime_ns == stamp
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Path(data.builtin_path()).read_bytes() == builtin.read_bytes()
    assert [p.name for p in (tmp_path / "slurmgen").iterdir()] == ["nr-builtin-v1.jsonl"]  # no temp left


def test_document_reads_a_dclm_record_with_extra_fields() -> None:
    raw = (
        b'{"text": "t", "url": "u", "bff_contained_ngram_count": 0,'
        b' "metadata": {"WARC-Record-ID": "<urn:uuid:1>", "WARC-Date": "x"}}'
    )
    doc = msgspec.json.decode(raw, type=Document)
    assert doc.row_id() == "<urn:uuid:1>" and doc.en() == 0.0
    with pytest.raises(msgspec.ValidationError, match="WARC-Record-ID"):
        msgspec.json.decode(b'{"text": "t", "metadata": {}}', type=Document)


def test_failures_count_by_class_not_by_message() -> None:
    records = [record("failed", f"llm_error: http://10.0.0.{i}:8000: HTTP 400: max_tokens={i} is too large", 0, 0)
               for i in range(3)] + [record("failed", "bad_input: line 7: missing field `text`")]
    out = metrics(records)
    assert out["reason/llm_error"] == 3 and out["reason/bad_input"] == 1
    assert not [k for k in out if "http" in k or "line" in k]
