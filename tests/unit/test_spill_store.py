"""A full spill store refuses new payloads before LMDB's map is full, frees never raise,
and spilling resumes once frees made room."""

import errno
import os

import lmdb
import pytest

from slurmgen.errors import DiskFull
from slurmgen.records import Record
from slurmgen.runtime import ledger as ledger_mod
from slurmgen.runtime.ledger import Ledger
from slurmgen.spill.store import HIGH_WATER, BlobStore

MAP = 1 << 20


def fill(store: BlobStore, size: int = 300) -> list[bytes]:
    keys = []
    for i in range(100_000):
        key = f"t{i}/k".encode()
        if not store.put_many([(key, os.urandom(size))]):
            return keys
        keys.append(key)
    raise AssertionError("the store never refused a payload")


def test_refuses_at_the_high_water_mark_then_resumes_after_frees(tmp_path):
    store = BlobStore(tmp_path / "s", MAP)
    keys = fill(store)
    assert store.fallbacks == 1 and store.full
    assert store.used_bytes() <= MAP * HIGH_WATER
    assert not store.put_many([(b"more", b"x" * 300)])
    assert store.fallbacks == 2 and store.fallback_bytes == 600
    store.delete_many(keys[: len(keys) // 2])  # frees in bounded transactions, no MAP_FULL
    assert store.free_failed == 0 and store.unfreed == 0
    assert store.put_many([(b"more", b"x" * 300)])  # spilling resumes
    assert store.get_many([b"more", keys[0], keys[-1]]) == [b"x" * 300, None, store.get_many([keys[-1]])[0]]
    store.close()


def test_a_map_filled_to_the_end_by_another_writer_degrades_to_inline_and_never_raises(tmp_path):
    store = BlobStore(tmp_path / "s", MAP)
    keys = []
    with pytest.raises(lmdb.MapFullError):  # a writer that ignores the mark (or an older slurmgen)
        for i in range(100_000):
            with store.env.begin(write=True) as txn:
                txn.put(f"t{i}/k".encode(), os.urandom(300))
            keys.append(f"t{i}/k".encode())
    with pytest.raises(lmdb.MapFullError):  # what the old delete_many did: one transaction, MAP_FULL
        with store.env.begin(write=True) as txn:
            for k in keys[::50]:
                txn.delete(k)
    store.delete_many(keys[::50])  # now: no exception out of a task coming home
    assert store.free_failed >= 1
    left = {k for k, v in zip(keys[::50], store.get_many(keys[::50])) if v is not None}
    assert left and left <= set(store._unfreed)  # a key not deleted is kept for another try
    assert not store.put_many([(b"new", b"y" * 300)])  # the task's payloads go inline, counted
    assert store.fallbacks == 1
    store.close()


def test_a_write_that_fails_for_disk_full_leaves_no_torn_line(tmp_path, monkeypatch):
    path = tmp_path / "shard.jsonl"
    ledger = Ledger(path)
    assert ledger.write(Record(task_id="a:0", row_id="a", trial=0, status="ok"))
    real_write = os.write

    def half_then_enospc(fd: int, data: bytes) -> int:
        if fd == ledger._fd and len(data) > 20:
            real_write(fd, bytes(data[:20]))  # part of the line reached the file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(ledger_mod.os, "write", half_then_enospc)
    with pytest.raises(DiskFull) as err:
        ledger.write(Record(task_id="b:0", row_id="b", trial=0, status="ok"))
    assert str(path) in str(err.value) and "bytes free" in str(err.value) and "run the same command" in str(err.value)
    monkeypatch.setattr(ledger_mod.os, "write", real_write)
    data = path.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 1 and b"b:0" not in data
    assert "b:0" not in ledger.done
    assert ledger.write(Record(task_id="b:0", row_id="b", trial=0, status="ok"))  # space again: it goes on
    ledger.close()
    assert Ledger(path).done == {"a:0", "b:0"}
