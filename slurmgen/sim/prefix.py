"""The simulator's KV block pool with automatic prefix caching, as vLLM V1 keeps it.

A request's tokens are cut into blocks of ``block_size``; each *full* block gets a hash
of its tokens chained to its parent block's hash, so a block's hash names the whole
prefix up to its end. A block whose KV has been computed is registered under its hash;
a later request whose leading block hashes are registered reuses those blocks (their
tokens count as already computed: only the tail is prefilled).

Blocks are reference-counted. A block no request holds goes to the tail of the free
queue but stays registered (its KV is still there) until it is reused for something
else: allocation takes never-used blocks first, then the head of the free queue, the
least recently freed — LRU eviction of cached blocks. A request's blocks are freed
last-block-first, so that its tail is evicted before its head.

Hit counting is vLLM's (0.32): each request, when first admitted (not again after a
preemption), adds its token count to ``queries`` and the tokens found cached to ``hits``;
with caching off nothing is counted. At least one token is always computed (a prompt
entirely cached recomputes its last block).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import msgspec

BlockId = int
Token = str  # the simulator's token: the text of one token, or a chat-template marker


class CacheCounters(msgspec.Struct, kw_only=True):
    queries: int = 0  # tokens of the requests looked up (vllm:prefix_cache_queries)
    hits: int = 0  # of those, tokens found cached (vllm:prefix_cache_hits)
    evictions: int = 0  # cached blocks reused for other tokens


def block_hashes(tokens: Sequence[Token], block_size: int) -> list[int]:
    """The chained hash of each full block of ``tokens`` (a partial last block has none)."""
    out: list[int] = []
    parent = 0
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tuple(tokens[start : start + block_size])))
        out.append(parent)
    return out


class BlockPool:
    """``capacity`` KV blocks; ``caching=False`` keeps the same accounting without reuse."""

    def __init__(self, capacity: int, block_size: int, *, caching: bool = True) -> None:
        self.capacity = capacity
        self.block_size = block_size
        self.caching = caching
        self.counters = CacheCounters()
        self._fresh = capacity  # never-used blocks (ids handed out lazily: capacity may be huge)
        self._next_id = 0
        self._free: OrderedDict[BlockId, None] = OrderedDict()  # used, now free: LRU first
        self._refs: dict[BlockId, int] = {}
        self._hash_of: dict[BlockId, int] = {}
        self._block_of: dict[int, BlockId] = {}  # hash -> the block holding that prefix

    @property
    def free(self) -> int:
        """Blocks allocatable now (free ones, cached or not)."""
        return self._fresh + len(self._free)

    @property
    def cached(self) -> int:
        return len(self._block_of)

    def lookup(self, hashes: Sequence[int], num_tokens: int) -> list[BlockId]:
        """The cached blocks of the longest cached prefix, leaving at least one token to compute."""
        found: list[BlockId] = []
        if self.caching:
            limit = (num_tokens - 1) // self.block_size
            for h in hashes[:limit]:
                block = self._block_of.get(h)
                if block is None:
                    break
                found.append(block)
        return found

    def count(self, num_tokens: int, hits: Sequence[BlockId]) -> None:
        """Count a request's lookup when it is admitted (not per attempt; not with caching off)."""
        if not self.caching:
            return
        self.counters.queries += num_tokens
        self.counters.hits += len(hits) * self.block_size

    def can_allocate(self, hits: Sequence[BlockId], new: int) -> bool:
        """Whether ``new`` blocks can be allocated after taking the cached ``hits``."""
        idle_hits = sum(1 for b in hits if self._refs.get(b, 0) == 0)
        return new + idle_hits <= self.free

    def take(self, hits: Sequence[BlockId]) -> None:
        """Hold cached blocks found by ``lookup`` (removing idle ones from the free queue)."""
        for b in hits:
            refs = self._refs.get(b, 0)
            if refs == 0:
                del self._free[b]
            self._refs[b] = refs + 1

    def allocate(self, n: int) -> list[BlockId]:
        """``n`` new blocks (the caller checked ``free``): never-used first, then LRU free ones."""
        out = []
        for _ in range(n):
            if self._fresh:
                self._fresh -= 1
                block = self._next_id
                self._next_id += 1
            else:
                block, _ = self._free.popitem(last=False)
                self._evict(block)
            self._refs[block] = 1
            out.append(block)
        return out

    def _evict(self, block: BlockId) -> None:
        h = self._hash_of.pop(block, None)
        if h is not None and self._block_of.get(h) == block:
            del self._block_of[h]
            self.counters.evictions += 1

    def release(self, blocks: Sequence[BlockId]) -> None:
        """Drop one reference to each block, last block first (its tail is evicted first)."""
        for b in reversed(blocks):
            refs = self._refs[b] - 1
            if refs:
                self._refs[b] = refs
                continue
            del self._refs[b]
            self._free[b] = None

    def register(self, block: BlockId, h: int) -> None:
        """``block``'s KV is computed and holds the prefix named ``h``: make it reusable."""
        if not self.caching or block in self._hash_of or h in self._block_of:
            return  # already cached (a duplicate computed side by side stays private)
        self._hash_of[block] = h
        self._block_of[h] = block

    def reset_counters(self) -> None:
        self.counters = CacheCounters()
