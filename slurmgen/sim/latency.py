"""An iteration-level (continuous-batching) model of an LLM engine, like vLLM V1.

Pure logic: no clock, no I/O. The caller adds requests and calls ``step()``; each step
is one "GPU iteration" and returns how long it would take and which requests produced
a token. The simulator's HTTP server sleeps ``duration_s / time_scale`` per step; a
virtual-time benchmark can just add the durations up.

Scheduling, per step (FCFS):

1. every running request that is decoding gets one token of the step's token budget
   (``max_num_batched_tokens``); if its KV cache needs a new block and none is free,
   the newest running request is preempted (its blocks are freed and it is queued
   again at the front, to be recomputed: its prompt *and* the tokens it already
   produced are prefilled again — the tokens are not re-emitted);
2. running requests still in prefill get chunks of the remaining budget (chunked
   prefill, mixed with the decodes);
3. waiting requests are admitted in order while ``running < max_num_seqs``, budget
   remains and ``ceil((tokens + 1) / block_size)`` KV blocks are free (no admission
   in a step that preempted). With prefix caching (on by default, as in vLLM; see
   slurmgen.sim.prefix) a request given its tokens reuses the cached blocks of its
   longest cached prefix: those tokens count as computed, only the tail is prefilled.

Policies: ``fcfs`` (vLLM's default) keeps the waiting queue in arrival order and
preempts the newest running request; ``priority`` (vLLM's ``--scheduling-policy
priority``) orders the waiting queue by (priority, arrival) — lower first — and
preempts the running request with the largest (priority, arrival).

A request emits a token when its whole context has been computed: the step that
finishes its prefill emits the first token, each decode step one more.

Step time: ``t0 + a·n_decode + b·n_prefill_tokens + c·Σ context tokens of the
batch`` milliseconds, times ``1 + jitter·N(0, 1)`` (clamped at 0) when ``jitter`` > 0.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

import msgspec

from slurmgen.sim.prefix import BlockId, BlockPool, Token, block_hashes

RequestId = str


class LatencyProfile(msgspec.Struct, frozen=True, kw_only=True):
    t0_ms: float = 0.0  # fixed cost of one step (weights read once per iteration)
    a_ms: float = 0.0  # per decoding sequence in the step
    b_ms: float = 0.0  # per prefill token in the step
    c_ms: float = 0.0  # per context token (KV read) of the sequences in the step
    max_num_seqs: int = 256  # running requests at most
    max_num_batched_tokens: int = 2048  # token budget of one step
    kv_blocks: int = 25_000  # KV cache capacity, in blocks
    block_size: int = 16  # tokens per KV block
    jitter: float = 0.0  # relative std-dev of a step's duration; 0 = deterministic


_HUGE = 1 << 40

PROFILES: dict[str, LatencyProfile] = {
    # Llama-3.1-8B BF16 on one A100-80GB SXM, vLLM V1 defaults (shared/reference/llm-backends.md §4).
    "a100-llama3.1-8b": LatencyProfile(
        t0_ms=11.0,
        a_ms=0.06,
        b_ms=0.085,
        c_ms=6.3e-5,
        max_num_seqs=256,
        max_num_batched_tokens=2048,
        kv_blocks=25_000,
        block_size=16,
    ),
    # Llama-3.1-70B BF16 over four A100-80GB (tensor parallel 4), derived from the 8B profile
    # by the same arithmetic, not measured: 35 GB of weights per GPU at ~2 TB/s plus the
    # all-reduces ≈ 25 ms a step; 140 GFLOP a prefill token over 4 x 312 TFLOPS at ~50 % ≈
    # 0.22 ms; 80 KiB of KV per token per GPU; ~36 GB of KV cache per GPU ≈ 28k blocks.
    "4xa100-llama3.1-70b": LatencyProfile(
        t0_ms=25.0,
        a_ms=0.12,
        b_ms=0.22,
        c_ms=4e-5,
        max_num_seqs=256,
        max_num_batched_tokens=2048,
        kv_blocks=28_000,
        block_size=16,
    ),
    # No modelled time and no capacity limits: measures the simulator's own CPU cost.
    "zero": LatencyProfile(max_num_seqs=_HUGE, max_num_batched_tokens=_HUGE, kv_blocks=_HUGE),
}


class StepResult(msgspec.Struct, kw_only=True):
    duration_s: float
    emitted: list[tuple[RequestId, int]]  # (request, tokens produced in this step)
    finished: list[RequestId]
    preempted: list[RequestId]
    n_decode: int = 0
    n_prefill_tokens: int = 0


class EngineCounters(msgspec.Struct, kw_only=True):
    preemptions: int = 0
    prompt_tokens: int = 0  # counted once per request, when its first token is produced
    generation_tokens: int = 0
    finished: int = 0
    aborted: int = 0
    steps: int = 0
    busy_s: float = 0.0  # sum of modelled step durations


POLICIES = ("fcfs", "priority")


class _Seq:
    __slots__ = ("active", "blocks", "computed", "hashes", "key", "max_out", "order", "output", "preempted",
                 "prompt", "registered", "rid")

    def __init__(self, rid: RequestId, order: int, prompt: int, max_out: int, key: tuple[int, int]) -> None:
        self.rid = rid
        self.order = order  # arrival rank: higher = newer
        self.key = key  # waiting-queue order: (priority, arrival) under `priority`, (0, arrival) under fcfs
        self.prompt = prompt
        self.max_out = max_out
        self.output = 0  # tokens produced so far
        self.computed = 0  # context tokens whose KV is computed
        self.blocks: list[BlockId] = []  # KV blocks held, in token order
        self.hashes: list[int] = []  # chained hash of each full block of its known tokens
        self.registered = 0  # leading blocks registered in the prefix cache
        self.active = False  # in the running list
        self.preempted = False  # was preempted once (its later lookups are not counted, as in vLLM)

    @property
    def num_tokens(self) -> int:
        return self.prompt + self.output

    @property
    def decoding(self) -> bool:
        return self.output > 0 and self.prompt + self.output - self.computed == 1


class Engine:
    """Continuous-batching scheduler + step-time model. Deterministic for a given seed."""

    def __init__(self, profile: LatencyProfile, *, seed: int = 0, prefix_caching: bool = True,
                 policy: str = "fcfs") -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown scheduling policy {policy!r}; known: {', '.join(POLICIES)}")
        self.profile = profile
        self.policy = policy
        self.counters = EngineCounters()
        self.pool = BlockPool(profile.kv_blocks, profile.block_size, caching=prefix_caching)
        self._rng = random.Random(seed)
        self._seqs: dict[RequestId, _Seq] = {}
        self._running: list[_Seq] = []  # sorted by arrival order
        self._waiting: list[_Seq] = []  # sorted by key
        self._next_order = 0

    # -- state ---------------------------------------------------------------

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def kv_usage(self) -> float:
        """Fraction of KV blocks in use, 0..1."""
        return 1.0 - self.pool.free / self.profile.kv_blocks

    def has_work(self) -> bool:
        return bool(self._running or self._waiting)

    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.profile.block_size)

    # -- requests ------------------------------------------------------------

    def add(self, request_id: RequestId, prompt_tokens: int, max_output_tokens: int, *,
            tokens: Sequence[Token] = (), priority: int = 0) -> None:
        """Queue a request that will produce exactly ``max_output_tokens`` tokens.

        ``tokens``: its prompt's tokens, optionally followed by its reply's (for prefix
        caching; without them nothing is looked up or cached). ``priority``: lower is served
        first under the ``priority`` policy (ignored under fcfs)."""
        if request_id in self._seqs:
            raise ValueError(f"request {request_id!r} is already in the engine")
        if prompt_tokens < 1 or max_output_tokens < 1:
            raise ValueError("a request needs at least 1 prompt token and 1 output token")
        if self._blocks_for(prompt_tokens + max_output_tokens) > self.profile.kv_blocks:
            raise ValueError(
                f"request {request_id!r} needs {prompt_tokens + max_output_tokens} tokens of KV cache; "
                f"the profile holds {self.profile.kv_blocks * self.profile.block_size}"
            )
        key = (priority if self.policy == "priority" else 0, self._next_order)
        seq = _Seq(request_id, self._next_order, prompt_tokens, max_output_tokens, key)
        if tokens and self.pool.caching:
            seq.hashes = block_hashes(tokens[: prompt_tokens + max_output_tokens], self.profile.block_size)
        self._next_order += 1
        self._seqs[request_id] = seq
        bisect.insort(self._waiting, seq, key=lambda s: s.key)

    def abort(self, request_id: RequestId) -> bool:
        """Drop a request (client went away). Returns False if it is unknown or done."""
        seq = self._seqs.pop(request_id, None)
        if seq is None:
            return False
        if seq.active:
            self._running.remove(seq)
            self.pool.release(seq.blocks)
        else:
            self._waiting.remove(seq)
        self.counters.aborted += 1
        return True

    # -- one iteration -------------------------------------------------------

    def step(self) -> StepResult:
        """Schedule one iteration, advance every scheduled request, return what happened."""
        budget = self.profile.max_num_batched_tokens
        batch: list[tuple[_Seq, int, bool]] = []  # (seq, tokens, is_decode)
        preempted: list[RequestId] = []
        prefilling = []
        for seq in list(self._running):
            if not seq.decoding:
                prefilling.append(seq)
            elif budget and seq.active and self._grow(seq, preempted):
                batch.append((seq, 1, True))
                budget -= 1
        for seq in prefilling:
            if budget and seq.active:
                n = min(seq.num_tokens - seq.computed, budget)
                batch.append((seq, n, False))
                budget -= n
        if not preempted:
            budget = self._admit(budget, batch)
        return self._advance(batch, preempted)

    def _grow(self, seq: _Seq, preempted: list[RequestId]) -> bool:
        """Give ``seq`` the KV blocks its next token needs; False if it was preempted."""
        need = -(-(seq.prompt + seq.output + 1) // self.profile.block_size) - len(seq.blocks)
        if need <= 0:
            return True
        while need > self.pool.free:
            victim = self._victim()
            self._preempt(victim)
            preempted.append(victim.rid)
            if victim is seq:
                return False
        seq.blocks += self.pool.allocate(need)
        return True

    def _victim(self) -> _Seq:
        """The running request to preempt: the newest (fcfs) or the largest (priority, arrival)."""
        if self.policy == "priority":
            return max(self._running, key=lambda s: s.key)
        return self._running[-1]

    def _preempt(self, seq: _Seq) -> None:
        self._running.remove(seq)
        self.pool.release(seq.blocks)
        seq.blocks = []
        seq.computed = seq.registered = 0
        seq.active = False
        seq.preempted = True
        bisect.insort(self._waiting, seq, key=lambda s: s.key)
        self.counters.preemptions += 1

    def _admit(self, budget: int, batch: list[tuple[_Seq, int, bool]]) -> int:
        pool = self.pool
        while self._waiting and budget and len(self._running) < self.profile.max_num_seqs:
            seq = self._waiting[0]
            hits = pool.lookup(seq.hashes, seq.num_tokens) if seq.hashes else []
            need = self._blocks_for(seq.num_tokens + 1) - len(hits)
            if not pool.can_allocate(hits, need):
                break
            del self._waiting[0]
            if not seq.preempted:
                pool.count(seq.num_tokens, hits)
            pool.take(hits)
            seq.blocks = hits + pool.allocate(need)
            seq.computed = len(hits) * self.profile.block_size
            seq.registered = len(hits)
            seq.active = True
            bisect.insort(self._running, seq, key=lambda s: s.order)
            n = min(seq.num_tokens - seq.computed, budget)
            batch.append((seq, n, False))
            budget -= n
        return budget

    def _advance(self, batch: list[tuple[_Seq, int, bool]], preempted: list[RequestId]) -> StepResult:
        emitted: list[tuple[RequestId, int]] = []
        finished: list[RequestId] = []
        n_decode = n_prefill = context = 0
        for seq, n, is_decode in batch:
            n_decode += is_decode
            n_prefill += 0 if is_decode else n
            seq.computed += n
            context += seq.computed
            if seq.hashes:
                self._register(seq)
            if seq.computed == seq.num_tokens:
                self._emit(seq, emitted, finished)
        if finished:
            self._running = [s for s in self._running if s.active]
        duration = self._duration(n_decode, n_prefill, context) if batch else 0.0
        self.counters.steps += 1
        self.counters.busy_s += duration
        return StepResult(
            duration_s=duration,
            emitted=emitted,
            finished=finished,
            preempted=preempted,
            n_decode=n_decode,
            n_prefill_tokens=n_prefill,
        )

    def _register(self, seq: _Seq) -> None:
        """Make the blocks this step filled reusable by later requests."""
        full = min(seq.computed // self.profile.block_size, len(seq.hashes))
        for i in range(seq.registered, full):
            self.pool.register(seq.blocks[i], seq.hashes[i])
        seq.registered = max(seq.registered, full)

    def _emit(self, seq: _Seq, emitted: list[tuple[RequestId, int]], finished: list[RequestId]) -> None:
        if seq.output == 0:
            self.counters.prompt_tokens += seq.prompt
        seq.output += 1
        self.counters.generation_tokens += 1
        emitted.append((seq.rid, 1))
        if seq.output >= seq.max_out:
            seq.active = False
            self.pool.release(seq.blocks)
            seq.blocks = []
            del self._seqs[seq.rid]
            finished.append(seq.rid)
            self.counters.finished += 1

    def _duration(self, n_decode: int, n_prefill: int, context: int) -> float:
        p = self.profile
        ms = p.t0_ms + p.a_ms * n_decode + p.b_ms * n_prefill + p.c_ms * context
        if p.jitter > 0:
            ms *= max(0.0, 1.0 + p.jitter * self._rng.gauss(0.0, 1.0))
        return ms / 1000.0
