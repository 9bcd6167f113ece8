"""A node-local, size-bounded blob store on LMDB, shared by every peer on the node.

It never stalls a run when it fills up:

- new payloads are refused (the caller keeps them inline, and counts it) once the data
  pages in use would pass ``HIGH_WATER`` of the map (``spill.max_bytes``), so that
  the headroom above stays for the pages deletes need (LMDB copies a page on write:
  in a map that is full even a delete fails with MDB_MAP_FULL);
- deletes go in small transactions (``FREE_BATCH`` keys, sorted); one that fails anyway keeps
  its keys and is tried again later — a free never raises;
- as soon as frees bring the data back under the mark, payloads are spilled again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lmdb

log = logging.getLogger("slurmgen.spill")

HIGH_WATER = 0.75  # share of the map that data pages may fill; the rest is headroom for deletes
LOW_WATER = 0.5  # once full, "spilling again" is logged when the data falls below this share
# keys per delete transaction: a delete copies each leaf it touches (copy on write) and
# pages freed in a transaction are reusable only after it, so a small batch needs a few
# pages of headroom, not a page per key of a large one
FREE_BATCH = 8
MAX_UNFREED = 1 << 16  # keys kept for another delete attempt (beyond: they stay until the run ends)


class BlobStore:
    def __init__(self, path: Path, max_bytes: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.env = lmdb.open(str(path), map_size=max_bytes, max_dbs=0, lock=True, sync=False,
                             metasync=False, writemap=False, readahead=False)
        self.psize = int(self.env.stat()["psize"])
        self.limit = int(max_bytes * HIGH_WATER)
        self.full = False
        self.fallbacks = 0  # put_many calls refused: their payloads travelled inline
        self.fallback_bytes = 0
        self.free_failed = 0  # delete transactions that failed (their keys are tried again)
        self._unfreed: list[bytes] = []

    def used_bytes(self) -> int:
        """Bytes of the pages holding data now (every peer of the node counts)."""
        st = self.env.stat()
        return int(st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * self.psize

    def _need(self, items: list[tuple[bytes, bytes]]) -> int:
        """Pages the items take, roughly: a large value gets overflow pages of its own."""
        total = 0
        for key, value in items:
            n = len(key) + len(value) + 16
            total += -(-n // self.psize) * self.psize if n > self.psize // 2 else n
        return total

    def put_many(self, items: list[tuple[bytes, bytes]]) -> bool:
        """Store all or nothing; False when the store is (nearly) full: the caller keeps them inline."""
        if self._unfreed:
            self._delete(self._take_unfreed())
        if self.used_bytes() + self._need(items) > self.limit:
            return self._refuse(items, f"its data reached {HIGH_WATER:.0%} of spill.max_bytes={self.max_bytes}")
        try:
            with self.env.begin(write=True) as txn:
                for key, value in items:
                    txn.put(key, value, overwrite=True)
        except lmdb.Error as exc:  # MapFullError (fragmented map) or any other LMDB failure
            return self._refuse(items, f"{type(exc).__name__}: {exc}")
        if self.full and self.used_bytes() < self.max_bytes * LOW_WATER:  # one line per episode, not per put
            log.info("spill store %s has room again: spilling resumes (%d payload sets went inline so far)",
                     self.path, self.fallbacks)
            self.full = False
        return True

    def _refuse(self, items: list[tuple[bytes, bytes]], why: str) -> bool:
        self.fallbacks += 1
        self.fallback_bytes += sum(len(v) for _, v in items)
        if not self.full:
            log.warning("spill store %s is full (%s): sending payloads inline until frees make room "
                        "(raise spill.max_bytes to spill more)", self.path, why)
        self.full = True
        return False

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        with self.env.begin(buffers=False) as txn:
            return [txn.get(k) for k in keys]

    def delete_many(self, keys: list[bytes]) -> None:
        """Delete in bounded transactions; never raises (failed keys are tried again later)."""
        self._delete(sorted(self._take_unfreed() + list(keys)))  # neighbours share leaves

    def _take_unfreed(self) -> list[bytes]:
        keys, self._unfreed = self._unfreed, []
        return keys

    def _delete(self, keys: list[bytes]) -> None:
        for i in range(0, len(keys), FREE_BATCH):
            batch = keys[i:i + FREE_BATCH]
            try:
                with self.env.begin(write=True) as txn:
                    for k in batch:
                        txn.delete(k)
            except lmdb.Error as exc:
                self.free_failed += 1
                if self.free_failed == 1 or self.free_failed % 1000 == 0:
                    log.warning("spill store %s: freeing %d payloads failed (%s: %s; %d times so far): "
                                "trying again later", self.path, len(batch), type(exc).__name__, exc,
                                self.free_failed)
                room = MAX_UNFREED - len(self._unfreed)
                self._unfreed.extend(keys[i:i + room] if room > 0 else [])
                return

    @property
    def unfreed(self) -> int:
        return len(self._unfreed)

    def stats(self) -> dict[str, int]:
        return {"inline_fallbacks": self.fallbacks, "inline_fallback_bytes": self.fallback_bytes,
                "free_failed": self.free_failed, "unfreed": self.unfreed, "used_bytes": self.used_bytes()}

    def close(self) -> None:
        self.env.close()
