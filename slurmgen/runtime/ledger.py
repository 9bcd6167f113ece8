"""An origin's output shard: the ledger of finished tasks.

A task is done when its record is in the file. Opening the ledger reads the ids
already there (resume) and cuts a torn last line left by a crash. Records are
appended once per task id, flushed at once and fsynced at most every ``sync_s``.
A write that fails (disk full) is cut back to the last full line and raises
(``DiskFull`` names the path and the free space): the file is never torn.

One writer per shard: the ledger holds a POSIX lock on ``.<shard>.lock`` beside it for
its life, and a new writer (a restarted or resubmitted peer) waits for the old one to
exit before it reads what is done. Otherwise a peer still draining after SIGTERM could
write a task that its successor, having read the file a moment earlier, runs again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

import msgspec

from slurmgen.proc.diskspace import disk_full, is_full
from slurmgen.records import Record

log = logging.getLogger("slurmgen.ledger")


class _IdOnly(msgspec.Struct):
    task_id: str


def repair_and_read(path: Path) -> set[str]:
    """Task ids in the shard; a torn last line is truncated away."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut != len(data):
        log.warning("%s: cut a torn last line of %d bytes", path, len(data) - cut)
        with open(path, "r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    decoder = msgspec.json.Decoder(_IdOnly)
    return {decoder.decode(line).task_id for line in data.splitlines() if line}


def lock_shard(path: Path, wait_s: float) -> int:
    """An fd holding the shard's writer lock; waits up to ``wait_s`` for a previous writer."""
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline, told = time.monotonic() + wait_s, False
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise RuntimeError(f"{path} is still being written by another process after {wait_s:.0f} s "
                                   "(an earlier peer of this shard that did not exit?); stop it and run again") \
                    from None
            if not told:
                log.info("%s: waiting for the shard's previous writer to exit", path)
                told = True
            time.sleep(0.1)


class Ledger:
    def __init__(self, path: Path, sync_s: float = 1.0, wait_s: float = 300.0) -> None:
        self.path = path
        self._lock = lock_shard(path, wait_s)
        self.done = repair_and_read(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size  # end of the last full line
        self._encoder = msgspec.json.Encoder()
        self._sync_s = sync_s
        self._synced_at = time.monotonic()

    def write(self, record: Record) -> bool:
        """Append the record unless its task is already there; True if written."""
        if record.task_id in self.done:
            return False
        self._append(self._encoder.encode(record) + b"\n")
        self.done.add(record.task_id)
        if time.monotonic() - self._synced_at > self._sync_s:
            self.sync()
        return True

    def _append(self, line: bytes) -> None:
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            os.ftruncate(self._fd, self._size)  # nothing of this record stays
            if is_full(exc):
                raise disk_full(self.path, exc) from exc
            raise
        self._size += len(line)

    def sync(self) -> None:
        os.fsync(self._fd)
        self._synced_at = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1
                os.close(self._lock)  # the lock goes last: the file is complete and synced
