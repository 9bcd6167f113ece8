"""The driver's id scan of a Parquet file reads only the columns row_id() uses, and still
gives every row the id the peers give its task: good rows, bad rows, and a row_id() that
reads a second column only on some rows."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from slurmgen.input import dataset


class Meta(msgspec.Struct, frozen=True):
    record: str = msgspec.field(default="", name="Record-ID")


class Row(msgspec.Struct):
    text: str
    score: float
    metadata: Meta = Meta()
    alt: str | None = None

    def row_id(self) -> str:
        return self.metadata.record or (self.alt or "")


def write(path: Path, rows: list[dict]) -> None:
    schema = pa.schema([("text", pa.string()), ("score", pa.string()),
                        ("metadata", pa.struct([("Record-ID", pa.string())])), ("alt", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=7)


def rows() -> list[dict]:
    out = []
    for i in range(50):
        row = {"text": f"doc {i}", "score": "0.5", "metadata": {"Record-ID": f"r{i}"}, "alt": None}
        if i == 11:
            row["score"] = "high"  # not a float: a bad row that still has its id
        if i == 17:
            row["text"] = None  # a missing required field
        if i == 30:
            row["metadata"] = {"Record-ID": ""}
            row["alt"] = "from-alt"  # the id from a second column, late in the file
        if i == 41:
            row["metadata"] = None  # no id at all
        out.append(row)
    return out


class Row2(Row):
    score: str  # the file's type: every row valid but 17


def test_the_scan_reads_the_id_columns_and_agrees_with_the_peers(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    write(path, rows())
    for row_type in (Row, Row2):
        total, dups = dataset.find_duplicates(path, 0, row_type, 0, "refuse", "test")
        assert total == 50
        assert dups.id_columns == ["alt", "metadata"]  # never text or score
        scanned = {index: row_id for index, _, row_id in
                   dataset.iter_ids(path, 0, row_type, 0, frozenset(dups.id_columns))}
        peers = {}
        for shard in range(3):
            for row in dataset.iter_shard(path, 0, shard, 3, row_type, dups=dups):
                peers[row.lineno - 1] = (row.row_id, type(row).__name__)
        assert {i: row_id for i, (row_id, _) in peers.items()} == scanned
        assert scanned[30] == "from-alt" and scanned[41] == "row-42" and scanned[5] == "r5"
        assert peers[17] == ("r17", "BadRow")
        assert peers[11] == ("r11", "BadRow" if row_type is Row else "GoodRow")


def test_a_limit_and_shards_give_each_row_once(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    write(path, rows())
    seen = sorted(row.lineno for shard in range(4) for row in dataset.iter_shard(path, 23, shard, 4, Row))
    assert seen == list(range(1, 24))
