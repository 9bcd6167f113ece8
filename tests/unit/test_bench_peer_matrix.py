"""The Matrix peer of the benchmark, without Matrix: its experiment config, process kinds, opt-in."""

from __future__ import annotations

import json
from pathlib import Path

from tools.bench.peer_matrix import CORAL_PROMPTS, classify_matrix, experiment_config
from tools.bench.sections import BY_NAME
from tools.bench.suite import params


def test_experiment_config_overrides_only_values(tmp_path: Path) -> None:
    name = experiment_config(tmp_path, urls=["http://127.0.0.1:1", "http://127.0.0.1:2"], dataset="/d.jsonl",
                             rows=7, concurrency=128, max_turns=4, output=tmp_path / "o.jsonl", model="m")
    cfg = json.loads((tmp_path / f"{name}.yaml").read_text())
    assert cfg["defaults"] == ["coral_mmlu_pro", "_self_"]  # Matrix's own Coral experiment underneath
    assert cfg["max_concurrent_tasks"] == 128 and cfg["orchestrator"] == {"max_turns": 4}
    assert cfg["dataset"] == {"name": "json", "split": "train", "data_files": "/d.jsonl", "cut_off": 7}
    assert set(cfg["resources"]) == {"teacher_llm", "student_llm", "extractor_llm"}
    for service, res in cfg["resources"].items():
        assert res["_target_"] == "slurmgen_matrix_llm.UrlLLMResourceClient"
        assert res["urls"] == ["http://127.0.0.1:1", "http://127.0.0.1:2"] and res["model"] == "m"
        assert res["exec_params"]["sticky_routing_prefix"] == service.removesuffix("_llm") + "_"
    agent = (CORAL_PROMPTS / "agent.txt").read_text().strip()
    assert cfg["agents"]["teacher"]["system_prompt"] == cfg["agents"]["student"]["system_prompt"] == agent
    assert cfg["agents"]["answer_extractor"]["system_prompt"].startswith("Collaborative Reasoner - role: answer")


def test_process_kinds() -> None:
    venv = "/v/lib/python3.11/site-packages/ray"
    cases = {
        "ray::CoralAgent": "actor:CoralAgent",
        "ray::CoralAgent.receive_message": "actor:CoralAgent",
        "ray::Sink": "actor:Sink",
        "ray::IDLE": "worker_idle",
        "ray::DashboardAgent": "dashboard_agent",
        f"{venv}/core/src/ray/gcs/gcs_server --log_dir=/tmp/x": "gcs",
        f"{venv}/core/src/ray/raylet/raylet --raylet_socket_name=/tmp/x": "raylet",
        f"/v/bin/python {venv}/_private/workers/default_worker.py --raylet-name=/tmp/x": "worker_idle",
        "/v/bin/python -m matrix.agents.p2p_agents --config-dir=/c": "driver",
        "/v/bin/python /v/bin/ray start --head --block": "ray_start",
        "bash -c set -u; ray start --head; python -m matrix.agents.p2p_agents": "launcher",
        "/v/bin/python -m ray.util.client.server --address=x": "ray_client_server",
    }
    for cmd, kind in cases.items():
        assert classify_matrix(cmd) == kind, cmd


def test_peers_matrix_section_and_params() -> None:
    assert "peers_matrix" in BY_NAME and BY_NAME["peers_matrix"].opt_in
    for quick in (True, False):  # --set can override them
        assert "matrix_concurrency" in params(quick, []).flat()


def test_compare_prints_the_target_without_judging() -> None:
    from tools.bench.sections.peers_matrix import compare

    side = {"ran_out": False, "cpu_s": 1.0, "tokens_per_s": 10.0}
    got = compare({**side, "system": "matrix", "cpu_ms_per_llm_call": 40.0},
                  {**side, "system": "slurmgen", "cpu_ms_per_llm_call": 0.5, "tokens_per_s": 100.0})
    assert got["cpu_per_call_matrix_over_slurmgen"] == 80.0 and got["target_met"] is True
    assert got["tokens_per_s_slurmgen_over_matrix"] == 10.0 and got["target_cpu_ratio"] == 50.0
