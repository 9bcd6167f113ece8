"""The simulator's prefix cache, as vLLM's: chained block hashes, reuse of a cached prefix
(only the tail is prefilled), LRU eviction of free cached blocks, hit counters in tokens."""

from __future__ import annotations

from slurmgen.sim.latency import Engine, LatencyProfile
from slurmgen.sim.prefix import BlockPool, block_hashes

B = 4  # tokens per block in these tests


def toks(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def fill(pool: BlockPool, tokens: list[str]) -> list[int]:
    """Allocate, compute and register a request's blocks, then free them; returns the blocks."""
    hashes = block_hashes(tokens, B)
    blocks = pool.allocate(-(-len(tokens) // B))
    for block, h in zip(blocks, hashes):
        pool.register(block, h)
    pool.release(blocks)
    return blocks


def test_hashes_chain_the_parent_block():
    a = block_hashes(toks("a", 8) + ["x"] * 4, B)
    b = block_hashes(toks("b", 4) + toks("a", 8)[4:] + ["x"] * 4, B)
    assert len(a) == 3 and len(block_hashes(toks("a", 11), B)) == 2  # a partial block has no hash
    assert a[0] != b[0] and a[1] != b[1]  # same tokens in block 1, but a different parent


def test_a_repeated_prefix_hits_its_full_blocks():
    pool = BlockPool(capacity=16, block_size=B)
    first = toks("p", 10)
    fill(pool, first)
    again = first + toks("q", 6)  # the 10 tokens again, then a new tail
    hits = pool.lookup(block_hashes(again, B), len(again))
    assert len(hits) == 2  # the two full blocks of the repeated 10 tokens
    pool.count(len(again), hits)
    assert (pool.counters.queries, pool.counters.hits) == (16, 8)


def test_a_different_prefix_does_not_hit():
    pool = BlockPool(capacity=16, block_size=B)
    fill(pool, toks("p", 12))
    other = ["z", *toks("p", 12)[1:]]  # differs in the first token only
    assert pool.lookup(block_hashes(other, B), len(other)) == []


def test_a_fully_cached_prompt_still_computes_one_token():
    pool = BlockPool(capacity=16, block_size=B)
    same = toks("p", 8)
    fill(pool, same)
    assert len(pool.lookup(block_hashes(same, B), len(same))) == 1  # of 2: the last token is recomputed


def test_lru_eviction_under_pressure_keeps_the_recently_used_prefix():
    pool = BlockPool(capacity=4, block_size=B)
    old, recent = toks("old", 8), toks("new", 8)
    fill(pool, old)
    fill(pool, recent)  # 4 blocks cached, all free; `old` freed first
    pool.allocate(2)  # pressure: two blocks reused -> the least recently freed go
    assert pool.lookup(block_hashes([*old, "t"], B), 9) == []
    assert len(pool.lookup(block_hashes([*recent, "t"], B), 9)) == 2
    assert pool.counters.evictions == 2 and pool.free == 2


def test_a_block_in_use_is_never_evicted():
    pool = BlockPool(capacity=3, block_size=B)
    held = toks("h", 8)
    blocks = pool.allocate(2)
    for block, h in zip(blocks, block_hashes(held, B)):
        pool.register(block, h)
    assert pool.free == 1
    pool.allocate(1)
    assert pool.free == 0 and len(pool.lookup(block_hashes([*held, "t"], B), 9)) == 2


def test_caching_off_never_hits():
    pool = BlockPool(capacity=16, block_size=B, caching=False)
    fill(pool, toks("p", 12))
    assert pool.lookup(block_hashes([*toks("p", 12), "t"], B), 13) == []


PROFILE = LatencyProfile(t0_ms=1.0, b_ms=0.1, max_num_seqs=8, max_num_batched_tokens=512, kv_blocks=64,
                         block_size=B)


def run(engine: Engine) -> list[int]:
    """Step until idle; the prefill tokens of every step."""
    prefills = []
    while engine.has_work():
        prefills.append(engine.step().n_prefill_tokens)
    return prefills


def test_engine_prefills_only_the_uncached_tail_of_a_second_turn():
    engine = Engine(PROFILE)
    turn1 = toks("sys", 40)
    engine.add("t1", 40, 3, tokens=[*turn1, "r0", "r1", "r2"])
    assert sum(run(engine)) == 40
    turn2 = [*turn1, "r0", "r1", "r2", *toks("user", 13)]  # 56 tokens: turn 1's prompt and reply, then more
    engine.add("t2", 56, 2, tokens=turn2)
    assert sum(run(engine)) == 56 - 40  # 10 blocks of turn 1 cached (its reply's block is not full)
    assert (engine.pool.counters.queries, engine.pool.counters.hits) == (40 + 56, 40)


def test_engine_without_caching_prefills_everything():
    engine = Engine(PROFILE, prefix_caching=False)
    for rid in ("a", "b"):
        engine.add(rid, 40, 1, tokens=toks("sys", 40))
        assert sum(run(engine)) == 40
    assert engine.pool.counters.hits == 0


def test_priority_policy_serves_the_lower_priority_value_first():
    one_at_a_time = LatencyProfile(max_num_seqs=1, kv_blocks=64, block_size=B)
    for policy, first in (("fcfs", "late"), ("priority", "urgent")):
        engine = Engine(one_at_a_time, policy=policy)
        engine.add("late", 4, 1, priority=5)
        engine.add("urgent", 4, 1, priority=-1)
        assert engine.step().finished == [first]


def test_priority_policy_preempts_the_largest_priority_value():
    tight = LatencyProfile(max_num_seqs=4, max_num_batched_tokens=64, kv_blocks=4, block_size=B)
    for policy, victim in (("fcfs", "keep"), ("priority", "drop")):  # fcfs preempts the newest
        engine = Engine(tight, policy=policy)
        engine.add("drop", 3, 8, priority=9)
        engine.add("keep", 3, 8, priority=0)
        preempted = []
        while engine.has_work():
            preempted += engine.step().preempted
        assert preempted and set(preempted) == {victim}, policy
