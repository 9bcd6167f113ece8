"""Arrow rows (Parquet, Hugging Face datasets) become the JSON a workflow's row type reads."""

import msgspec
import pytest

from slurmgen.input.formats import Want, _encode_rows

pa = pytest.importorskip("pyarrow")


def rows(table) -> list[dict]:
    return [msgspec.json.decode(data) for _, _, data in _encode_rows(iter(table.to_batches()), Want(0, 0, 1, None))]


def test_a_map_column_is_a_json_object_at_the_top_and_nested():
    m = pa.map_(pa.string(), pa.float64())
    flat = pa.table({"lang": pa.array([[("en", 0.9)], None, []], m)})
    assert rows(flat) == [{"lang": {"en": 0.9}}, {"lang": None}, {"lang": {}}]
    nested = pa.table({"meta": pa.array([{"lang": [("en", 0.5)]}], pa.struct([("lang", m)])),
                       "lists": pa.array([[[("a", 1.0)]]], pa.list_(m))})
    assert rows(nested) == [{"meta": {"lang": {"en": 0.5}}, "lists": [{"a": 1.0}]}]


def test_structs_lists_and_nulls_pass_as_they_are():
    table = pa.table({"id": ["a", None], "meta": [{"k": "v"}, None], "tags": [["x"], []]})
    assert rows(table) == [{"id": "a", "meta": {"k": "v"}, "tags": ["x"]}, {"id": None, "meta": None, "tags": []}]
