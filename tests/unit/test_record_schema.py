"""The shipped JSON Schema is the Record Struct's, and a record has every field."""

import json
from importlib.resources import files

import msgspec

from slurmgen.records import Record, schema


def test_the_shipped_schema_is_generated_from_the_struct():
    shipped = json.loads(files("slurmgen").joinpath("schema/record.schema.json").read_text())
    assert shipped == schema(), "regenerate: python -m slurmgen.records > slurmgen/schema/record.schema.json"


def test_an_empty_record_still_writes_every_field():
    line = msgspec.json.encode(Record(task_id="a:0", row_id="a", trial=0, status="failed"))
    assert list(json.loads(line)) == [f.name for f in msgspec.structs.fields(Record)]
