"""A hosted pool's API key is read from the environment and sent, and never lands in the run directory."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from slurmgen.errors import LLMError
from slurmgen.llm.client import LLMClient
from slurmgen.llm.types import ChatMessage, Endpoint, Sampling
from tests.conftest import read_records, run_slurmgen, slurmgen_processes
from tests.simproc import start_sim, stop_sim


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def test_the_api_key_is_used_but_never_written(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"sk-slurmgen-test-{uuid.uuid4().hex}"
    sim = start_sim(model="sim-test", time_scale=200, script="slurmgen.agents.nr.script:respond", api_key=key)
    try:
        monkeypatch.setenv("SLURMGEN_TEST_KEY", key)
        proc = run_slurmgen("workflow=nr", "dataset.limit=20", f"run.dir={run_dir}", "llm.backend=openai",
                            f"llm.urls=[{sim.url}]", "llm.model=sim-test", "llm.api_key_env=SLURMGEN_TEST_KEY",
                            "llm.rpm=6000", "llm.max_concurrency=8")
    finally:
        stop_sim(sim)
    recs = read_records(run_dir)
    assert len(recs) == 20
    # the simulator answers 401 without the key: every task ran to a verdict, so the key was sent
    assert {r.status for r in recs} <= {"ok", "rejected"}, {r.reason for r in recs}
    assert "api_key_env: SLURMGEN_TEST_KEY" in (run_dir / "config.yaml").read_text()
    assert files_holding(run_dir, key.encode()) == []
    assert key not in proc.stdout and key not in proc.stderr
    assert slurmgen_processes(run_dir) == []


def test_a_wrong_key_is_refused_by_the_simulator_without_echoing_it() -> None:
    sim = start_sim(model="sim-test", time_scale=0, api_key="right-key")
    try:

        async def main() -> LLMError:
            client = LLMClient(api_key="wrong-key", max_retries=0)
            client.set_endpoints([Endpoint(url=sim.url, model="sim-test")])
            try:
                with pytest.raises(LLMError) as info:
                    await client.chat([ChatMessage(role="user", content="hi")], sampling=Sampling(max_tokens=4))
                return info.value
            finally:
                await client.close()

        err = asyncio.run(main())
        assert "HTTP 401" in str(err) and "wrong-key" not in str(err) and "right-key" not in str(err)
    finally:
        stop_sim(sim)
