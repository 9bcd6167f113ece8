import json

import msgspec
import pytest

from slurmgen.errors import DatasetError
from slurmgen.input.dataset import BadRow, GoodRow, check_path, iter_shard
from slurmgen.records import Record
from slurmgen.runtime.ledger import Ledger


class Row(msgspec.Struct):
    id: str
    text: str

    def row_id(self) -> str:
        return self.id


def test_ledger_writes_once_and_repairs_a_torn_line(tmp_path):
    path = tmp_path / "shard-00000.jsonl"
    led = Ledger(path)
    assert led.write(Record(task_id="a:0", row_id="a", trial=0, status="ok"))
    assert not led.write(Record(task_id="a:0", row_id="a", trial=0, status="ok"))
    led.close()
    with open(path, "ab") as f:
        f.write(b'{"task_id": "b:0", "row_')  # a crash mid-write
    again = Ledger(path)
    assert again.done == {"a:0"}
    assert path.read_bytes().endswith(b"\n")
    assert len(path.read_bytes().splitlines()) == 1


def test_shards_partition_rows_and_bad_lines_name_line_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"id": f"r{i}", "text": "t"}) for i in range(6)]
    lines[2] = "{not json"
    lines[4] = json.dumps({"id": "r4"})
    path.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")
    shards = [list(iter_shard(path, 0, i, 2, Row)) for i in range(2)]
    ids = [r.row_id for s in shards for r in s]
    assert len(ids) == 6 and len(set(ids)) == 6
    bad = {r.row_id: r.reason for s in shards for r in s if isinstance(r, BadRow)}
    assert "line 3" in bad["line-3"] and "JSON" in bad["line-3"]
    assert "line 6" in bad["r4"] and "`text`" in bad["r4"]  # a field missing: the row keeps its own id
    assert all(isinstance(r, GoodRow) for s in shards for r in s if r.row_id.startswith("r") and r.row_id != "r4")
    assert len(list(iter_shard(path, 3, 0, 1, Row))) == 3


def test_dataset_path_errors_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        check_path(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DatasetError, match="is a directory but not a Hugging Face save_to_disk one"):
        check_path(str(tmp_path))


def test_a_second_writer_of_a_shard_waits_for_the_first_to_exit(tmp_path):
    """A resubmitted peer must not read the shard while its predecessor, still draining after
    SIGTERM, can add to it: it waits, then sees every record the first one wrote."""
    import subprocess
    import sys
    import time

    shard = tmp_path / "shard-00001.jsonl"
    first = subprocess.Popen([sys.executable, "-c", f"""
import time
from slurmgen.records import Record
from slurmgen.runtime.ledger import Ledger
led = Ledger(__import__('pathlib').Path({str(shard)!r}))
led.write(Record(task_id="a:0", row_id="a", trial=0, status="ok"))
print("open", flush=True)
time.sleep(1.5)
led.write(Record(task_id="b:0", row_id="b", trial=0, status="ok"))  # written while draining
led.close()
"""], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "open"
    t0 = time.monotonic()
    second = Ledger(shard)
    waited = time.monotonic() - t0
    assert first.wait(timeout=10) == 0
    assert second.done == {"a:0", "b:0"} and waited > 0.5
    assert not second.write(Record(task_id="b:0", row_id="b", trial=0, status="ok"))
    second.close()
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time, pathlib
from slurmgen.runtime.ledger import Ledger
led = Ledger(pathlib.Path({str(shard)!r}))
print("open", flush=True)
time.sleep(5)
"""], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    with pytest.raises(RuntimeError, match="still being written by another process"):
        Ledger(shard, wait_s=0.3)
    holder.kill()
    holder.wait()
    Ledger(shard, wait_s=5).close()  # a killed writer's lock goes with it
