"""Input formats: each reader streams (row index, position, row as JSON bytes).

The format is chosen by the path: ``.jsonl`` / ``.ndjson`` / ``.json`` (one object per
line; also ``.gz`` and ``.zst`` compressed; a UTF-8 BOM is fine), ``.parquet`` (read by
row group, never whole), or a directory written by Hugging Face ``save_to_disk`` (its
arrow files, streamed). Position is the 1-based line of a JSONL file and the 1-based row
of the others. Anything else is refused before anything starts.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any, Iterator

import msgspec

from slurmgen.errors import DatasetError

ACCEPTED = "JSONL (.jsonl, .ndjson, .json; .gz or .zst compressed), Parquet (.parquet), or a Hugging Face dataset " \
           "directory written by save_to_disk"
JSONL = (".jsonl", ".ndjson", ".json")
BOM = b"\xef\xbb\xbf"
Row = tuple[int, int, bytes]  # (row index, position, JSON)


HUB = "hf:"  # dataset.path of a dataset.hf run: "hf:<name>:<split>"


def detect(path: Path) -> str:
    """jsonl | jsonl.gz | jsonl.zst | parquet | hf | hub, or a DatasetError naming what is accepted."""
    if str(path).startswith(HUB):
        return "hub"
    if path.is_dir():
        if (path / "state.json").exists() and (path / "dataset_info.json").exists():
            return "hf"
        raise DatasetError(f"dataset.path={str(path)!r} is a directory but not a Hugging Face save_to_disk one "
                           f"(no state.json / dataset_info.json); give a file inside it, or one of: {ACCEPTED}")
    name = path.name.lower()
    for ext, kind in ((".gz", "jsonl.gz"), (".zst", "jsonl.zst")):
        if name.endswith(ext) and name[: -len(ext)].endswith(JSONL):
            return kind
    if name.endswith(JSONL):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    hint = " (convert it: e.g. pandas.read_csv(...).to_json(out, orient='records', lines=True))" \
        if name.endswith((".csv", ".tsv")) else ""
    raise DatasetError(f"dataset.path={str(path)!r}: unknown format{hint}; accepted: {ACCEPTED}")


def read(path: Path, kind: str, limit: int, columns: list[str] | None = None, shard: int = 0,
         shards: int = 1) -> Iterator[Row]:
    """Rows ``index % shards == shard`` (all by default), up to ``limit`` rows of the input.
    ``columns``: only these of a columnar input (ignored for JSONL: a line is read whole)."""
    if kind.startswith("jsonl"):
        for index, (position, data) in enumerate(_jsonl(path, kind)):
            if limit and index >= limit:
                return
            if index % shards == shard:
                yield index, position, data
        return
    want = Want(limit, shard, shards, columns)
    readers = {"parquet": _parquet, "hf": _hf, "hub": _hub}
    yield from _encode_rows(readers[kind](path, want), want)


class Want(msgspec.Struct, frozen=True):
    """Which rows and columns a reader gives."""

    limit: int
    shard: int
    shards: int
    columns: list[str] | None


def _open(path: Path, kind: str) -> IO[bytes]:
    if kind == "jsonl.gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]  # gzip.open(..., "rb") is a binary file
    if kind == "jsonl.zst":
        zstandard = _need("zstandard", "zstandard")
        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    return open(path, "rb")


def _jsonl(path: Path, kind: str) -> Iterator[tuple[int, bytes]]:
    with _open(path, kind) as raw:
        f = raw if kind == "jsonl" else _lines(raw)
        for lineno, line in enumerate(f, start=1):
            if lineno == 1 and line.startswith(BOM):
                line = line[len(BOM):]
            line = line.strip()
            if line:
                yield lineno, line


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines of a decompressing stream (zstandard's reader has no line iteration)."""
    tail = b""
    while block := stream.read(1 << 20):
        parts = (tail + block).split(b"\n")
        tail = parts.pop()
        yield from parts
    if tail:
        yield tail


def _encode_rows(batches: Iterator[Any], want: Want) -> Iterator[Row]:
    """Each wanted row of the batches as JSON; rows of other shards are never converted."""
    import pyarrow as pa

    encoder = msgspec.json.Encoder()
    start = 0
    for batch in batches:
        n = batch.num_rows if not want.limit else min(batch.num_rows, want.limit - start)
        first = (want.shard - start) % want.shards
        picked = range(first, n, want.shards)
        if want.shards > 1 or n < batch.num_rows:
            batch = batch.take(pa.array(picked, type=pa.int64()))
        if want.columns is not None:
            batch = batch.select([c for c in want.columns if c in batch.schema.names])
        for offset, row in zip(picked, _pylist(batch) if batch.num_columns else ({} for _ in picked)):
            yield start + offset, start + offset + 1, encoder.encode(row)
        start += n
        if want.limit and start >= want.limit:
            return


def _pylist(batch: Any) -> list[dict[str, Any]]:
    """The batch's rows, a map column as a JSON object (pyarrow gives [key, value] pairs, which the
    workflow's row type refuses). Top-level maps are converted here (~0.3 µs a row); pyarrow's own
    conversion (~18 µs a row) only for maps nested in other columns."""
    import pyarrow as pa

    top = [f.name for f in batch.schema if pa.types.is_map(f.type)]
    if any(_has_map(f.type.item_type if pa.types.is_map(f.type) else f.type) for f in batch.schema):
        return batch.to_pylist(maps_as_pydicts="lossy")
    rows = batch.to_pylist()
    for row in rows if top else ():
        for name in top:
            if row[name] is not None:
                row[name] = dict(row[name])
    return rows


def _has_map(t: Any) -> bool:
    """A map anywhere inside type ``t`` (structs, lists, map values)."""
    import pyarrow as pa

    if pa.types.is_map(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_map(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_map(t.value_type)
    return False


def _parquet(path: Path, want: Want) -> Iterator[Any]:
    pq = _need("pyarrow.parquet", "pyarrow")
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow's own errors: a truncated or foreign file
        raise DatasetError(f"dataset.path={str(path)!r} cannot be read as Parquet: {exc}") from None
    columns = None if want.columns is None else [c for c in want.columns if c in parquet.schema_arrow.names]
    yield from parquet.iter_batches(batch_size=1024, columns=columns)


def _hf(path: Path, want: Want) -> Iterator[Any]:
    ipc = _need("pyarrow.ipc", "pyarrow")
    state = json.loads((path / "state.json").read_text())
    files = [path / f["filename"] for f in state.get("_data_files", [])]
    if not files:
        raise DatasetError(f"dataset.path={str(path)!r}: its state.json lists no data files")

    for file in files:
        with open(file, "rb") as f:
            yield from ipc.open_stream(f)


def load_hub(spec: str) -> object:
    """``hf:<name>:<split>`` from this machine only: the local Hugging Face cache, or a local
    directory of data files; never the network (the run's nodes have no hub access)."""
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    datasets = _need("datasets", "datasets")
    name, _, split = spec[len(HUB):].rpartition(":")
    try:
        return datasets.load_dataset(name, split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types for "not here"
        raise DatasetError(
            f"dataset.hf={name!r} dataset.split={split!r} is not on this machine ({type(exc).__name__}: {exc}). "
            "Runs never download: on a machine with hub access, run datasets.load_dataset(name, split=split)"
            ".save_to_disk(DIR), copy DIR here and pass dataset.path=DIR (or fill this machine's "
            "HF_DATASETS_CACHE the same way)") from None


def _hub(path: Path, want: Want) -> Iterator[Any]:
    ds = load_hub(str(path))
    for table in ds.with_format("arrow").iter(batch_size=1024):  # type: ignore[attr-defined]  # datasets has no type information
        yield from table.to_batches()


def fingerprint(path: Path, kind: str) -> str:
    """Size and a hash of the first and last MiB of every data file: cheap, and changed by an edit."""
    if kind == "hub":
        return f"hub:{load_hub(str(path))._fingerprint}"  # type: ignore[attr-defined]  # a datasets.Dataset (untyped)
    files = sorted(p for p in path.iterdir() if p.suffix == ".arrow") if kind == "hf" else [path]
    h = hashlib.blake2b(digest_size=12)
    size = 0
    for file in files:
        n = file.stat().st_size
        size += n
        with open(file, "rb") as f:
            h.update(f.read(1 << 20))
            f.seek(max(0, n - (1 << 20)))
            h.update(f.read(1 << 20))
    return f"{kind}:{size}:{h.hexdigest()}"


def _need(module: str, pip: str) -> Any:  # an optional package: its attributes are read as used
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DatasetError(f"reading this dataset needs the {pip} package: pip install {pip}") from None
