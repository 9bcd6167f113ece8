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
            "--max-model-len", str(llm.max_model_len), *engine_args(llm), *llm.extra_args]


def engine_args(llm: LLMConf) -> list[str]:
    """The prefix-caching and scheduling flags, spelled as vLLM's (the sim takes the same)."""
    return [*([] if llm.prefix_caching else ["--no-enable-prefix-caching"]),
            *(["--scheduling-policy", "priority"] if llm.scheduling_policy == "priority" else [])]


def vllm_command(llm: LLMConf, python: str = sys.executable, key: str = "llm", local: bool = True,
                 tools: bool = False) -> list[str]:
    """``local``: the server runs on this machine (cluster.kind=local), whose CPU then picks its dtype;
    ``tools``: a role offering tools uses this pool (a tool-call parser is needed)."""
    _need_model_path(llm, key)
    return [llm.server_python or python, *llm.vllm_entry, "--model", llm.model_path,
            "--served-model-name", llm.model, "--host", "{host}", "--port", "{port}",
            *(cpu_dtype(llm.extra_args, key) if local else []), *chat_template_args(llm, key),
            *(tool_parser_args(llm) if tools else []), *engine_args(llm), *llm.extra_args]




def chat_template_path(name: str, key: str = "llm") -> Path:
    """A shipped template by name (slurmgen/templates/NAME.jinja) or a path to a jinja file."""
    from importlib.resources import files

    shipped = Path(str(files("slurmgen").joinpath("templates", f"{name}.jinja")))
    path = shipped if shipped.is_file() else Path(name).expanduser()
    if not path.is_file():
        names = sorted(p.stem for p in shipped.parent.glob("*.jinja"))
        raise ConfigError(f"{key}.chat_template={name!r} is neither a shipped template ({', '.join(names)}) "
                          "nor a jinja file")
    return path.resolve()


def chat_template_args(llm: LLMConf, key: str = "llm") -> list[str]:
    if not llm.chat_template or "--chat-template" in llm.extra_args:
        return []
    return ["--chat-template", str(chat_template_path(llm.chat_template, key))]


def tool_parser_args(llm: LLMConf) -> list[str]:
    if not llm.tool_call_parser or any(a.startswith("--tool-call-parser") for a in llm.extra_args):
        return []
    return ["--enable-auto-tool-choice", "--tool-call-parser", llm.tool_call_parser]


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 arithmetic


def cpu_without_bf16(cpuinfo: Path = Path("/proc/cpuinfo"), gpus: Path = Path("/dev")) -> bool:
    """No NVIDIA device and a CPU without bf16 instructions: vLLM would run on this CPU, and slowly in bf16
    (a batch of prefills past 300 s kills its engine: EngineDeadError)."""
    if any(gpus.glob("nvidia[0-9]*")):
        return False
    try:
        flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.read_text().splitlines()
                      if ln.startswith("flags")), [])
    except OSError:
        return False
    return not any(f in flags for f in BF16_FLAGS)


def cpu_dtype(extra_args: list[str], key: str = "llm", bf16_missing: bool | None = None) -> list[str]:
    """``--dtype float32`` for vLLM on a CPU without bf16 when no dtype is given; a bf16 dtype there is
    refused before anything starts. (Judged on the machine that renders the command: the local cluster's.)"""
    missing = cpu_without_bf16() if bf16_missing is None else bf16_missing
    if not missing:
        return []
    given = [a.split("=", 1)[1] if "=" in a else nxt for a, nxt in zip(extra_args, [*extra_args[1:], ""])
             if a == "--dtype" or a.startswith("--dtype=")]
    if not given:
        return ["--dtype", "float32"]
    if given[-1] in ("bfloat16", "bf16"):
        raise ConfigError(f"{key}.extra_args has --dtype {given[-1]}, but this machine has no GPU and its CPU no "
                          f"bf16 instructions ({' / '.join(BF16_FLAGS)} missing in /proc/cpuinfo): vLLM's engine "
                          "would crawl and die (EngineDeadError) under a batch of prefills; use --dtype float32 "
                          "(or leave --dtype out: slurmgen then passes float32)")
    return []


def sglang_command(llm: LLMConf, python: str = sys.executable, key: str = "llm") -> list[str]:
    _need_model_path(llm, key)
    return [llm.server_python or python, *llm.sglang_entry, "--model-path", llm.model_path,
            "--served-model-name", llm.model, "--host", "{host}", "--port", "{port}", *llm.extra_args]


def server_command(llm: LLMConf, run_dir: Path, name: str, script: str, python: str = sys.executable,
                   key: str = "llm", local: bool = True, tools: bool = False) -> list[str]:
    """``key`` is the pool's config prefix (llm, llms.<name>), for messages; ``local``: see vllm_command."""
    if llm.backend == "sim":
        return sim_command(llm, run_dir, name, script, python)
    if llm.backend == "vllm":
        return vllm_command(llm, python, key, local, tools)
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
            "--host", host, "--kind", "llm", "--model", llm.model, "--pool", pool,
            "--capacity", str(llm.max_concurrency_per_endpoint),
            "--health-path", health_path(llm), "--ready-timeout", str(llm.ready_timeout_s), "--", *inner]


def _need_model_path(llm: LLMConf, key: str) -> None:
    if not llm.model_path:
        raise ConfigError(f"{key}.backend={llm.backend} needs {key}.model_path (a weights directory or model id)")
