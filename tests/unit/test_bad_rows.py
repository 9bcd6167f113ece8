"""Every input line becomes exactly one row or one bad row; parsing never raises."""

import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from slurmgen.agents.nr.data import Document
from slurmgen.input.dataset import BadRow, GoodRow, parse_row

VALID = json.dumps({"text": "Prove that the sum of two odd numbers is even. " * 5,
                    "metadata": {"WARC-Record-ID": "<urn:uuid:x1>"},
                    "language_id_whole_page_fasttext": {"en": 0.9}}).encode()


def test_invalid_utf8_inside_a_string_is_a_bad_row_that_keeps_its_id():
    line = VALID.replace(b"Prove", b"caf\xe9 \xff\xfe", 1)
    row = parse_row(5, line, Document)
    assert isinstance(row, BadRow) and row.row_id == "<urn:uuid:x1>"
    assert row.reason == "bad_input: line 5: not valid UTF-8 at byte 13 (invalid continuation byte)"
    assert row.raw is not None and json.loads(row.raw)["text"].startswith("caf\ufffd")


def test_missing_fields_wrong_types_and_oversize_rows_name_line_and_field():
    missing = parse_row(2, b'{"metadata": {"WARC-Record-ID": "a"}}', Document)
    assert isinstance(missing, BadRow) and "line 2" in missing.reason and "`text`" in missing.reason
    wrong = parse_row(3, b'{"text": 7, "metadata": {"WARC-Record-ID": "a"}}', Document)
    assert isinstance(wrong, BadRow) and "`$.text`" in wrong.reason
    big = parse_row(4, VALID, Document, max_bytes=100)
    assert isinstance(big, BadRow) and f"{len(VALID)} bytes, over dataset.max_row_bytes=100" in big.reason
    assert isinstance(parse_row(1, VALID, Document, max_bytes=len(VALID)), GoodRow)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    assert isinstance(parse_row(1, data, Document), (GoodRow, BadRow))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutations_of_a_valid_row_never_raise(edits):
    line = bytearray(VALID)
    for pos, byte in edits:
        line[pos] = byte
    row = parse_row(1, bytes(line), Document)
    assert isinstance(row, (GoodRow, BadRow))
    if isinstance(row, GoodRow):
        msgspec.json.decode(row.raw)  # a good row is valid JSON the peers can decode again
