"""A node-local, size-bounded blob store on LMDB, shared by every peer on the node."""

from __future__ import annotations

import logging
from pathlib import Path

import lmdb

log = logging.getLogger("slurmgen.spill")


class BlobStore:
    def __init__(self, path: Path, max_bytes: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.env = lmdb.open(str(path), map_size=max_bytes, max_dbs=0, lock=True, sync=False,
                             metasync=False, writemap=False, readahead=False)
        self.full = False

    def put_many(self, items: list[tuple[bytes, bytes]]) -> bool:
        """Store all or nothing; False when the store is full (the caller keeps them inline)."""
        try:
            with self.env.begin(write=True) as txn:
                for key, value in items:
                    txn.put(key, value, overwrite=True)
            return True
        except lmdb.MapFullError:
            if not self.full:
                log.warning("spill store %s is full: sending payloads inline (raise spill.max_bytes)", self.path)
            self.full = True
            return False

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        with self.env.begin(buffers=False) as txn:
            return [txn.get(k) for k in keys]

    def delete_many(self, keys: list[bytes]) -> None:
        with self.env.begin(write=True) as txn:
            for k in keys:
                txn.delete(k)
        self.full = False

    def close(self) -> None:
        self.env.close()
