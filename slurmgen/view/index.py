"""The viewer's index of a run: a few fixed-width columns per record, kept in the run dir.

``RUN/state/view-index/`` (or, for a run this user cannot write, a directory under
``~/.cache/slurmgen/view-index/``) holds one file per column (``offset.u8``, ``status.u1``, ...: the
record's byte offset and length in its shard, and the fields the list filters on) and
``meta.json`` (how many bytes of each shard are indexed, and the string tables the
columns' codes refer to). Built once, then extended from where it stopped: a live run's
new lines are indexed when the viewer next looks; a shard that was replaced (another inode,
or shorter) makes it start over. Columns are read through ``numpy.memmap``, so the
viewer's memory does not grow with the run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from array import array
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np

from slurmgen.errors import SlurmgenError
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.view.fields import STATUS_CODES, UNREADABLE, Fields, decode

VERSION = 1
CHUNK = 32 << 20  # bytes of a shard read at a time while indexing
# column name -> numpy dtype; metric columns are "m<i>" float32 (NaN = the record has no such metric)
COLUMNS = {"shard": "u2", "offset": "u8", "length": "u4", "status": "u1", "trial": "i4",
           "reason": "u2", "roles": "u8", "pools": "u4"}
MAX_ROLES, MAX_POOLS, MAX_METRICS = 64, 32, 64


class ShardMark(msgspec.Struct):
    name: str
    inode: int
    indexed: int = 0  # bytes of the shard indexed (always at a line's end)


class Meta(msgspec.Struct):
    version: int = VERSION
    n: int = 0
    shards: list[ShardMark] = []
    reasons: list[str] = []
    roles: list[str] = []
    pools: list[str] = []
    metrics: list[str] = []


def _code(table: list[str], value: str, limit: int) -> int:
    """``value``'s code in ``table`` (appended when new); -1 once the table is full."""
    try:
        return table.index(value)
    except ValueError:
        if len(table) >= limit:
            return -1
        table.append(value)
        return len(table) - 1


def _lines(buf: bytes, base: int) -> Iterator[tuple[int, memoryview]]:
    """(offset, line) of each complete line of ``buf`` (read from offset ``base``)."""
    view, pos = memoryview(buf), 0
    while (end := buf.find(b"\n", pos)) >= 0:
        if end > pos:
            yield base + pos, view[pos:end]
        pos = end + 1


class _Batch:
    """The columns of the records of one chunk, before they are appended to the files."""

    def __init__(self, meta: Meta) -> None:
        self.meta = meta
        self.cols = {name: array("q") for name in COLUMNS if name != "roles"}
        self.roles = array("Q")
        self.metrics: list[array] = [array("f") for _ in meta.metrics]

    def add(self, shard: int, offset: int, line: memoryview) -> None:
        f = decode(line)
        c, m = self.cols, self.meta
        c["shard"].append(shard)
        c["offset"].append(offset)
        c["length"].append(len(line))
        c["status"].append(UNREADABLE if f is None else STATUS_CODES.get(f.status, UNREADABLE))
        c["trial"].append(0 if f is None else f.trial)
        c["reason"].append(0 if f is None else max(0, _code(m.reasons, f.reason_class, 65535)))
        c["pools"].append(0 if f is None else _bits(m.pools, f.pools, MAX_POOLS))
        self.roles.append(0 if f is None else _bits(m.roles, f.roles, MAX_ROLES))
        self._metrics(f)

    def _metrics(self, f: Fields | None) -> None:
        values = f.metrics if f is not None else {}
        for name in values:
            if name not in self.meta.metrics and len(self.meta.metrics) < MAX_METRICS:
                self.meta.metrics.append(name)
                self.metrics.append(array("f", [float("nan")]) * (len(self.roles) - 1))
        nan = float("nan")
        for name, col in zip(self.meta.metrics, self.metrics, strict=True):
            col.append(float(values.get(name, nan)))

    def __len__(self) -> int:
        return len(self.roles)


def _bits(table: list[str], values: list[str], limit: int) -> int:
    out = 0
    for v in values:
        code = _code(table, v, limit)
        if code >= 0:
            out |= 1 << code
    return out


def index_dir(run: RunDir) -> Path:
    """``RUN/state/view-index``; for a run this user cannot write (someone else's), a directory
    under ``~/.cache/slurmgen/view-index/`` named after the run's path."""
    own = run.state / "view-index"
    try:
        own.mkdir(parents=True, exist_ok=True)
        if os.access(own, os.W_OK):
            return own
    except OSError:
        pass
    key = hashlib.blake2b(str(run.root.resolve()).encode(), digest_size=8).hexdigest()
    cache = Path.home() / ".cache" / "slurmgen" / "view-index" / f"{run.root.name}-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _dtypes(meta: Meta) -> dict[str, str]:
    return {**COLUMNS, **{f"m{i}": "f4" for i in range(len(meta.metrics))}}


class Index:
    """The index of ``run_dir``'s records; :meth:`refresh` brings it up to date."""

    def __init__(self, run_dir: Path) -> None:
        self.run = RunDir(Path(run_dir))
        if not self.run.results.is_dir():
            raise SlurmgenError(f"{run_dir} is not a run directory (no results/ in it); give the run.dir of a run")
        self.dir = index_dir(self.run)
        self.meta = self._load()
        self._maps: dict[str, np.ndarray] = {}
        self._fds: dict[int, int] = {}

    # -- building ------------------------------------------------------------------------
    def _load(self) -> Meta:
        path = self.dir / "meta.json"
        try:
            meta = msgspec.json.decode(path.read_bytes(), type=Meta)
        except (FileNotFoundError, msgspec.DecodeError):
            return Meta()
        for name, dtype in _dtypes(meta).items():
            path = self._path(name, dtype)
            if meta.version != VERSION or not path.exists() or path.stat().st_size < meta.n * np.dtype(dtype).itemsize:
                return Meta()
        return meta

    def _path(self, name: str, dtype: str) -> Path:
        return self.dir / f"{name}.{dtype}"

    def _reset(self) -> None:
        shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.meta = Meta()
        self._close()

    def refresh(self) -> int:
        """Index what the shards gained since the last time; return how many records were added."""
        before = self.meta.n
        with open(self.dir / ".lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.meta = self._load()  # another viewer may have extended it meanwhile
            marks = self._marks()
            if marks is None:
                self._reset()
                marks = self._marks() or []
            for mark, size in marks:
                while mark.indexed < size:
                    if not self._index_chunk(mark, size):
                        break
        if self.meta.n != before:
            self._close()
        return self.meta.n - before

    def _marks(self) -> list[tuple[ShardMark, int]] | None:
        """Each shard's mark and size now; None if a shard indexed before was replaced."""
        known = {m.name: m for m in self.meta.shards}
        out = []
        for path in sorted(self.run.results.glob("shard-*.jsonl")):
            st = path.stat()
            mark = known.get(path.name)
            if mark is None:
                mark = ShardMark(name=path.name, inode=st.st_ino)
                self.meta.shards.append(mark)
            elif mark.inode != st.st_ino or st.st_size < mark.indexed:
                return None
            out.append((mark, st.st_size))
        order = {m.name: i for i, m in enumerate(self.meta.shards)}
        return sorted(out, key=lambda ms: order[ms[0].name])

    def _index_chunk(self, mark: ShardMark, size: int) -> bool:
        with open(self.run.results / mark.name, "rb") as f:
            f.seek(mark.indexed)
            buf = f.read(min(CHUNK, size - mark.indexed))
        end = buf.rfind(b"\n") + 1
        if end == 0:  # a line still being written (or longer than a chunk: read it whole)
            if len(buf) < CHUNK:
                return False
            with open(self.run.results / mark.name, "rb") as f:
                f.seek(mark.indexed)
                buf = f.readline()
            end = len(buf) if buf.endswith(b"\n") else 0
            if end == 0:
                return False
        batch, shard_code = _Batch(self.meta), self.meta.shards.index(mark)
        for offset, line in _lines(buf[:end], mark.indexed):
            batch.add(shard_code, offset, line)
        self._append(batch)
        mark.indexed += end
        write_atomic(self.dir / "meta.json", msgspec.json.encode(self.meta))
        return True

    def _append(self, batch: _Batch) -> None:
        n = self.meta.n
        for name, dtype in _dtypes(self.meta).items():
            path = self._path(name, dtype)
            width = np.dtype(dtype).itemsize
            if name == "roles":
                data = np.frombuffer(batch.roles, dtype="u8").astype(dtype)
            elif name.startswith("m"):
                data = np.frombuffer(batch.metrics[int(name[1:])], dtype="f4")
            else:
                data = np.asarray(batch.cols[name], dtype="i8").astype(dtype)
            with open(path, "ab") as f:
                have = f.tell()
                if have > n * width:  # the tail of an interrupted append
                    f.truncate(n * width)
                elif have < n * width:  # a metric first seen now: NaN for the records before
                    f.write(np.full(n - have // width, np.nan, dtype="f4").tobytes())
                f.write(data.tobytes())
        self.meta.n = n + len(batch)

    # -- reading -------------------------------------------------------------------------
    def col(self, name: str) -> np.ndarray:
        """Column ``name`` (a read-only view of its file, ``n`` long)."""
        got = self._maps.get(name)
        if got is None:
            dtype = _dtypes(self.meta)[name]
            if self.meta.n == 0:
                got = np.empty(0, dtype=dtype)
            else:
                got = np.memmap(self._path(name, dtype), dtype=dtype, mode="r", shape=(self.meta.n,))
            self._maps[name] = got
        return got

    def metric(self, name: str) -> np.ndarray | None:
        return self.col(f"m{self.meta.metrics.index(name)}") if name in self.meta.metrics else None

    def read(self, n: int) -> bytes:
        """Record ``n``'s line."""
        if not 0 <= n < self.meta.n:
            raise IndexError(n)
        shard = int(self.col("shard")[n])
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(self.run.results / self.meta.shards[shard].name, os.O_RDONLY)
        return os.pread(fd, int(self.col("length")[n]), int(self.col("offset")[n]))

    def _close(self) -> None:
        self._maps.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def close(self) -> None:
        self._close()
