"""A dataset refused up front by its shape, before any row is read.

- a ``.json`` file holding one JSON array (not one object per line): refused with the command
  that converts it (rows are streamed by line, never loaded whole; see the README);
- a Parquet file or a ``save_to_disk`` directory whose schema lacks a column the workflow's
  row type requires, or holds one of a type the row type cannot take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from slurmgen.errors import DatasetError


def refuse_json_array(path: Path, kind: str) -> None:
    """A JSON-lines input whose first non-blank byte is '[' is one JSON array: refused, with how to convert it."""
    if not kind.startswith("jsonl"):
        return
    from slurmgen.input.formats import read

    first = next(read(path, kind, 1), None)  # (index, line, the first non-blank line, BOM and blanks stripped)
    if first is not None and first[2].startswith(b"["):
        out = path.with_suffix(".jsonl") if kind == "jsonl" else Path(path.name + ".jsonl")
        raise DatasetError(
            f"dataset.path={str(path)!r} holds one JSON array, not one JSON object per line (JSON lines); "
            f"convert it, e.g. jq -c '.[]' {path} > {out}  (or: python3 -c \"import json,sys; "
            f"[print(json.dumps(r)) for r in json.load(open(sys.argv[1]))]\" {path} > {out}), "
            f"then pass dataset.path={out}")


def arrow_schema(path: Path, kind: str) -> Any:
    """The input's pyarrow schema (Parquet footer, or the first arrow file of a save_to_disk directory)."""
    import json

    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow's own errors: a truncated or foreign file
            raise DatasetError(f"dataset.path={str(path)!r} cannot be read as Parquet: {exc}") from None
    if kind == "hf":
        from pyarrow import ipc

        files = json.loads((path / "state.json").read_text()).get("_data_files", [])
        if files:
            with open(path / files[0]["filename"], "rb") as f:
                return ipc.open_stream(f).schema
    return None


def check_columns(path: Path, kind: str, row_type: type, what: str) -> None:
    """Refuse a columnar input whose schema cannot give the row type (missing or mistyped columns)."""
    schema = arrow_schema(path, kind)
    if schema is None or not (isinstance(row_type, type) and issubclass(row_type, msgspec.Struct)):
        return
    problems = []
    for f in msgspec.structs.fields(row_type):
        if f.encode_name not in schema.names:
            if f.required:
                problems.append(f"no column {f.encode_name!r} (required)")
            continue
        have = schema.field(f.encode_name).type
        if not fits(have, mi.type_info(f.type)):
            problems.append(f"column {f.encode_name!r} is {have}, the row type wants {_name(f.type)}")
    if problems:
        raise DatasetError(f"dataset.path={str(path)!r} does not fit {what}={row_type.__module__}:"
                           f"{row_type.__qualname__}: {'; '.join(problems)}. Its schema says so before any row is "
                           "read: fix the columns (e.g. pandas: df.rename / df.astype, then to_parquet) or give "
                           "another dataset")


def fits(have: Any, want: mi.Type) -> bool:
    """Can a column of arrow type ``have`` hold values of ``want``? Unknown pairs are let through."""
    import pyarrow as pa

    t = pa.types
    checks: dict[type, Any] = {
        mi.StrType: lambda: t.is_string(have) or t.is_large_string(have) or t.is_dictionary(have),
        mi.IntType: lambda: t.is_integer(have),
        mi.FloatType: lambda: t.is_integer(have) or t.is_floating(have),
        mi.BoolType: lambda: t.is_boolean(have),
        mi.ListType: lambda: t.is_list(have) or t.is_large_list(have) or t.is_fixed_size_list(have),
        mi.DictType: lambda: t.is_struct(have) or t.is_map(have),
        mi.StructType: lambda: t.is_struct(have) or t.is_map(have),
        mi.NoneType: lambda: t.is_null(have),
    }
    if isinstance(want, mi.UnionType):
        return any(fits(have, member) for member in want.types)
    check = checks.get(type(want))
    return True if check is None else bool(check())


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)
