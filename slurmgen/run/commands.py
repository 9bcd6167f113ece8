"""Command lines of the services slurmgen starts: pure functions of the config.

``{host}`` and ``{port}`` stay as placeholders: the service supervisor fills them in
on the node where the server runs (a free port there). vLLM and SGLang run under
``llm.server_python`` when set (their own venv); everything else under ``python``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from slurmgen.config.types import LLMConf
from slurmgen.errors import ConfigError

BACKENDS = ("sim", "vllm", "sglang", "openai")


def sim_command(llm: LLMConf, run_dir: Path, name: str, script: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "slurmgen.sim", "--run-dir", str(run_dir), "--name", name,
            "--host", "{host}", "--port", "{port}", "--model", llm.model, "--script", script,
            "--profile", llm.profile, "--time-scale", str(llm.time_scale),
            "--max-model-len", str(llm.max_model_len), *llm.extra_args]


def vllm_command(llm: LLMConf, python: str = sys.executable, key: str = "llm") -> list[str]:
    _need_model_path(llm, key)
    return [llm.server_python or python, *llm.vllm_entry, "--model", llm.model_path,
            "--served-model-name", llm.model, "--host", "{host}", "--port", "{port}", *llm.extra_args]


def sglang_command(llm: LLMConf, python: str = sys.executable, key: str = "llm") -> list[str]:
    _need_model_path(llm, key)
    return [llm.server_python or python, *llm.sglang_entry, "--model-path", llm.model_path,
            "--served-model-name", llm.model, "--host", "{host}", "--port", "{port}", *llm.extra_args]


def server_command(llm: LLMConf, run_dir: Path, name: str, script: str, python: str = sys.executable,
                   key: str = "llm") -> list[str]:
    """``key`` is the pool's config prefix (llm, llms.<name>), for messages."""
    if llm.backend == "sim":
        return sim_command(llm, run_dir, name, script, python)
    if llm.backend == "vllm":
        return vllm_command(llm, python, key)
    if llm.backend == "sglang":
        return sglang_command(llm, python, key)
    raise ConfigError(f"{key}.backend={llm.backend!r} starts no server; valid backends: {', '.join(BACKENDS)}")


def health_path(llm: LLMConf) -> str:
    return "/health"


def supervised(run_dir: Path, name: str, llm: LLMConf, inner: list[str], python: str = sys.executable,
               host: str = "127.0.0.1", pool: str = "default") -> list[str]:
    """Wrap a server command in the supervisor that health-checks and registers it.

    ``host`` is the address the server binds ("auto" = this node's address, on a cluster).
    """
    return [python, "-m", "slurmgen.launchers.service", "--run-dir", str(run_dir), "--name", name,
            "--host", host, "--kind", "llm", "--model", llm.model, "--pool", pool, "--capacity", str(llm.max_concurrency_per_endpoint),
            "--health-path", health_path(llm), "--ready-timeout", str(llm.ready_timeout_s), "--", *inner]


def _need_model_path(llm: LLMConf, key: str) -> None:
    if not llm.model_path:
        raise ConfigError(f"{key}.backend={llm.backend} needs {key}.model_path (a weights directory or model id)")
