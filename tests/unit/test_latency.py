"""The continuous-batching latency model: admission, budget, step time, KV, preemption."""

from __future__ import annotations

import pytest

from slurmgen.sim.latency import PROFILES, Engine, LatencyProfile, StepResult


def profile(**overrides: float) -> LatencyProfile:
    base = dict(
        t0_ms=10.0,
        a_ms=1.0,
        b_ms=0.1,
        c_ms=0.01,
        max_num_seqs=8,
        max_num_batched_tokens=1000,
        kv_blocks=1000,
        block_size=16,
    )
    return LatencyProfile(**{**base, **overrides})


def run_to_end(engine: Engine, limit: int = 100_000) -> list[StepResult]:
    steps = []
    while engine.has_work():
        steps.append(engine.step())
        assert len(steps) < limit, "engine does not make progress"
    return steps


def test_profiles_carry_the_reference_numbers() -> None:
    a100 = PROFILES["a100-llama3.1-8b"]
    assert (a100.t0_ms, a100.a_ms, a100.b_ms, a100.c_ms) == (11.0, 0.06, 0.085, 6.3e-5)
    assert (a100.max_num_seqs, a100.max_num_batched_tokens, a100.kv_blocks, a100.block_size) == (256, 2048, 25_000, 16)
    zero = PROFILES["zero"]
    assert zero.t0_ms == zero.a_ms == zero.b_ms == zero.c_ms == 0
    assert zero.max_num_seqs >= 1_000_000 and zero.kv_blocks >= 1_000_000


def test_step_time_formula_prefill_then_decode() -> None:
    engine = Engine(profile())
    engine.add("a", 100, 3)
    engine.add("b", 100, 3)
    first = engine.step()  # both prompts prefilled in one mixed step, each emits its first token
    assert (first.n_decode, first.n_prefill_tokens) == (0, 200)
    assert first.duration_s == pytest.approx((10 + 0.1 * 200 + 0.01 * (100 + 100)) / 1000)
    assert first.emitted == [("a", 1), ("b", 1)]
    second = engine.step()  # two decodes; context 101 each (prompt + the token being fed)
    assert (second.n_decode, second.n_prefill_tokens) == (2, 0)
    assert second.duration_s == pytest.approx((10 + 1 * 2 + 0.01 * (101 + 101)) / 1000)
    third = engine.step()
    assert third.finished == ["a", "b"]
    assert not engine.has_work()
    assert engine.counters.generation_tokens == 6 and engine.counters.prompt_tokens == 200


def test_idle_step_takes_no_time() -> None:
    engine = Engine(profile())
    assert engine.step().duration_s == 0.0


def test_max_num_seqs_caps_admission_fcfs() -> None:
    engine = Engine(profile(max_num_seqs=2))
    for rid in "abcd":
        engine.add(rid, 10, 2)
    step = engine.step()
    assert [rid for rid, _ in step.emitted] == ["a", "b"]
    assert (engine.running, engine.waiting) == (2, 2)
    engine.step()  # a and b finish
    step = engine.step()
    assert [rid for rid, _ in step.emitted] == ["c", "d"]


def test_token_budget_decodes_first_then_chunked_prefill() -> None:
    engine = Engine(profile(max_num_batched_tokens=64))
    engine.add("short", 10, 50)
    engine.step()  # "short" prefilled, now decoding
    engine.add("long", 200, 5)
    steps = [engine.step() for _ in range(4)]
    assert all(s.n_decode == 1 for s in steps)  # the decode is never starved
    assert [s.n_prefill_tokens for s in steps] == [63, 63, 63, 11]  # 200 = 3 × 63 + 11
    assert ("long", 1) not in steps[2].emitted and ("long", 1) in steps[3].emitted  # first token ends the prefill


def test_kv_blocks_gate_admission() -> None:
    engine = Engine(profile(kv_blocks=10, block_size=16))
    engine.add("a", 100, 5)  # needs ceil(101 / 16) = 7 blocks
    engine.add("b", 100, 5)  # 7 more: does not fit beside a
    engine.step()
    assert (engine.running, engine.waiting) == (1, 1)
    assert engine.kv_usage == pytest.approx(0.7)
    run_to_end(engine)
    assert engine.counters.finished == 2 and engine.kv_usage == 0.0


def test_preemption_under_tiny_kv_recomputes_the_newest() -> None:
    engine = Engine(profile(kv_blocks=4, block_size=4, max_num_batched_tokens=100))
    engine.add("old", 3, 8)  # each needs 1 block to start, then grows one block per 4 tokens
    engine.add("new", 3, 8)
    steps = run_to_end(engine)
    preempted = [rid for s in steps for rid in s.preempted]
    assert preempted and set(preempted) == {"new"}
    assert engine.counters.preemptions == len(preempted)
    emitted: dict[str, int] = {}
    for s in steps:
        for rid, n in s.emitted:
            emitted[rid] = emitted.get(rid, 0) + n
    assert emitted == {"old": 8, "new": 8}  # recompute never re-emits tokens
    finished = [rid for s in steps for rid in s.finished]
    assert finished == ["old", "new"]


def test_request_larger_than_kv_is_refused() -> None:
    engine = Engine(profile(kv_blocks=2, block_size=16))
    with pytest.raises(ValueError, match="KV cache"):
        engine.add("big", 30, 10)
    with pytest.raises(ValueError):
        engine.add("empty", 0, 1)


def test_abort_frees_blocks_and_slots() -> None:
    engine = Engine(profile())
    engine.add("a", 100, 100)
    engine.add("b", 10, 1)
    engine.step()
    assert engine.abort("a") is True
    assert engine.abort("b") is False  # already finished
    assert not engine.has_work() and engine.kv_usage == 0.0


def test_deterministic_with_jitter() -> None:
    def trace(seed: int) -> list[tuple[float, list, list]]:
        engine = Engine(profile(jitter=0.2, kv_blocks=20, block_size=4), seed=seed)
        for i in range(6):
            engine.add(f"r{i}", 5 + 3 * i, 10 + i)
        return [(s.duration_s, s.emitted, s.preempted) for s in run_to_end(engine)]

    assert trace(1) == trace(1)
    assert trace(1) != trace(2)  # jitter depends on the seed
    assert len({d for d, _, _ in trace(1)}) > 5


def test_many_concurrent_requests_share_steps() -> None:
    """Continuous batching: 32 requests take far fewer steps than 32 × one request."""
    p = PROFILES["a100-llama3.1-8b"]

    def total_time(n: int) -> float:
        engine = Engine(p)
        for i in range(n):
            engine.add(str(i), 1000, 128)
        return sum(s.duration_s for s in run_to_end(engine))

    one, many = total_time(1), total_time(32)
    assert one == pytest.approx(0.011 * 128 + 0.085 * 1000 / 1000, rel=0.05)  # ≈ TTFT 0.1 s + 127 × 11 ms
    assert many < 4 * one
