"""Writing exported rows: JSONL, Parquet (in batches) or a Hugging Face ``save_to_disk`` dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec

from slurmgen.errors import ConfigError

FORMATS = ("jsonl", "parquet", "hf")
BATCH = 1000


def write(rows: Iterable[dict[str, Any]], out: Path, fmt: str) -> int:
    if fmt == "jsonl":
        return _jsonl(rows, out)
    if fmt == "parquet":
        return _parquet(rows, out)
    return _hf(rows, out)


def _jsonl(rows: Iterable[dict[str, Any]], out: Path) -> int:
    n = 0
    encoder = msgspec.json.Encoder()
    with open(out, "wb") as f:
        for row in rows:
            f.write(encoder.encode(row) + b"\n")
            n += 1
    return n


def columnar(row: dict[str, Any]) -> dict[str, Any]:
    """Columns of one type: any-JSON values of a record (output, input, history) as JSON text."""
    return {k: json.dumps(v) if k in ("output", "input", "history", "usage", "metrics") else v for k, v in row.items()}


def batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(columnar(row))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _parquet(rows: Iterable[dict[str, Any]], out: Path) -> int:
    pa, pq = _need("pyarrow", "pyarrow"), _need("pyarrow.parquet", "pyarrow")
    writer, n = None, 0
    try:
        for batch in batches(rows):
            table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            n += len(batch)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no row: an empty file with no columns is still a valid Parquet file
        pq.write_table(pa.table({}), out)
    return n


def _hf(rows: Iterable[dict[str, Any]], out: Path) -> int:
    """Parquet first (streamed), then the library's own save_to_disk from it (memory-mapped)."""
    datasets = _need("datasets", "datasets (pip install 'slurmgen[hf]')")
    datasets.disable_progress_bars()
    staging = out.parent / f".{out.name}.staging"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        n = _parquet(rows, staging / "data.parquet")
        ds = datasets.Dataset.from_parquet(str(staging / "data.parquet"), cache_dir=str(staging / "cache"))
        ds.save_to_disk(str(out))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return n


def _need(module: str, pip: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"this format needs {module}: pip install {pip}") from None
