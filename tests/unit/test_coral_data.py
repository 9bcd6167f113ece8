"""Coral rows, the built-in question set and the dataset converter (unit tier)."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from slurmgen.agents.coral import convert, data, questions
from slurmgen.agents.coral.data import Question
from slurmgen.errors import DatasetError
from slurmgen.input.dataset import BadRow, GoodRow, parse_row

HAVE_PYARROW = importlib.util.find_spec("pyarrow") is not None


# --- rows ----------------------------------------------------------------------


def row(**fields: object) -> bytes:
    base = {"question_id": 70, "question": "q?", "options": ["a", "b", "c", "d"], "answer": "C"}
    base.update(fields)
    return msgspec.json.encode({k: v for k, v in base.items() if v is not None})


def test_mmlu_pro_row_is_read_and_extra_fields_ignored():
    line = row(answer_index=2, cot_content="", category="math", src="ori_mmlu-x")
    parsed = parse_row(1, line, Question)
    assert isinstance(parsed, GoodRow) and parsed.row_id == "70" and parsed.raw == line
    assert parse_row(1, row(question_id="q-70"), Question).row_id == "q-70"


@pytest.mark.parametrize("fields, needle", [
    ({"answer": "E"}, "names no option"),
    ({"answer": "c"}, "answer"),
    ({"answer": "AB"}, "answer"),
    ({"options": ["only one"]}, "options"),
    ({"options": None}, "options"),
    ({"question": None}, "question"),
    ({"question_id": None}, "question_id"),
])
def test_bad_rows_become_failed_records_naming_the_field(fields, needle):
    parsed = parse_row(3, row(**fields), Question)
    own_id = "line-3" if "question_id" in fields else "70"  # a row keeps its id when it can be read
    assert isinstance(parsed, BadRow) and parsed.row_id == own_id
    assert needle in parsed.reason and parsed.reason.startswith("bad_input: line 3")


# --- the built-in set ----------------------------------------------------------


def test_builtin_set_is_generated_once_and_valid(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = Path(data.builtin_path())
    assert path.parent == tmp_path / "slurmgen" and path.exists()
    lines = path.read_bytes().splitlines()
    assert len(lines) == data.BUILTIN_SIZE == 300
    rows = [msgspec.json.decode(line, type=Question) for line in lines]
    assert len({r.row_id() for r in rows}) == 300
    for r in rows:
        assert 4 <= len(r.options) <= 10
        assert len(set(r.options)) == len(r.options)
        assert r.answer == data.LETTERS[questions.gold_position(r.options)]
    categories = Counter(json.loads(line)["category"] for line in lines)
    assert set(categories) == {"arithmetic", "unit conversion", "logic"}
    assert len({len(r.options) for r in rows}) == 7  # every size from 4 to 10
    stamp = path.stat().st_mtime_ns
    assert data.builtin_path() == str(path) and path.stat().st_mtime_ns == stamp  # not rewritten


def test_builtin_set_is_deterministic():
    assert questions.make_questions(40, 5) == questions.make_questions(40, 5)
    assert questions.make_questions(40, 5) != questions.make_questions(40, 6)


def test_gold_position_ignores_option_order():
    opts = ["12", "15", "9", "30", "7"]
    assert questions.gold_position(opts) == questions.gold_position(list(reversed(opts)))
    assert 0 <= questions.gold_position(opts) < len(opts)


@pytest.mark.parametrize("index", range(33))
def test_generated_answers_are_right(index):
    """Spot-check the gold option of the arithmetic templates against Python."""
    q = questions.make_question(index, data.BUILTIN_SEED)
    gold = q["options"][q["answer_index"]]
    assert q["answer"] == data.LETTERS[q["answer_index"]]
    text = q["question"]
    if text.startswith("What is ") and " x " in text:
        a, b = text[len("What is "):-1].split(" x ")
        assert gold == str(int(a) * int(b))
    elif text.startswith("What is ") and " + " in text:
        a, rest = text[len("What is "):-1].split(" + ")
        b, c = rest.split(" - ")
        assert gold == str(int(a) + int(b) - int(c))
    elif text.startswith("What is the remainder"):
        words = text.split()
        assert gold == str(int(words[5]) % int(words[-1].rstrip("?")))


# --- converter -----------------------------------------------------------------


def test_jsonl_is_copied_with_known_shapes_mapped(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        json.dumps({"question_id": 5, "question": "q", "options": ["a", "b"], "answer": "B"}),
        json.dumps({"question": "k", "answer_a": "1", "answer_b": "2", "answer_c": "3", "answer_d": "4",
                    "correct_answer": "D", "topic": "x"}),
        json.dumps({"question_id": 9, "question": "i", "options": ["a", "b", "c"], "answer_index": 1}),
        "",
    ]))
    out = tmp_path / "out.jsonl"
    assert convert.to_jsonl(str(src), out) == 3
    rows = [msgspec.json.decode(line, type=Question) for line in out.read_bytes().splitlines()]
    assert [(r.row_id(), r.answer, len(r.options)) for r in rows] == [("5", "B", 2), ("1", "D", 4), ("9", "B", 3)]
    assert convert.to_jsonl(str(src), out, limit=1) == 1
    assert convert.prepare_dataset(str(src), tmp_path / "d") == str(src)  # JSONL needs nothing


def test_bad_sources_fail_with_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not a file"):
        convert.to_jsonl(str(tmp_path / "missing.parquet"), tmp_path / "o.jsonl")
    broken = tmp_path / "b.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(DatasetError, match="b.jsonl:1"):
        convert.to_jsonl(str(broken), tmp_path / "o.jsonl")
    assert convert.main([str(broken), str(tmp_path / "o.jsonl")]) == 2


def test_parquet_without_pyarrow_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed: importing it fails
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    src = tmp_path / "test.parquet"
    src.write_bytes(b"PAR1")
    with pytest.raises(DatasetError, match="needs the pyarrow package"):
        convert.to_jsonl(str(src), tmp_path / "o.jsonl")


def test_hugging_face_without_datasets_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed: importing it fails
    with pytest.raises(DatasetError, match="needs the datasets package"):
        convert.to_jsonl("hf:TIGER-Lab/MMLU-Pro:test", tmp_path / "o.jsonl")


@pytest.mark.skipif(not HAVE_PYARROW, reason="needs pyarrow")
def test_parquet_in_mmlu_pro_shape_converts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "question_id": [70, 71],
        "question": ["Which is prime?", "2 + 2?"],
        "options": [["4", "6", "7", "9"], ["3", "4", "5", "22", "N/A"]],
        "answer": ["C", "B"],
        "answer_index": [2, 1],
        "category": ["math", "math"],
    })
    src = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(table, src)
    out = convert.prepare_dataset(str(src), tmp_path / "run")
    assert out == str(tmp_path / "run" / "test-00000-of-00001.jsonl")
    rows = [msgspec.json.decode(line, type=Question) for line in Path(out).read_bytes().splitlines()]
    assert [(r.row_id(), r.answer, r.options[-1]) for r in rows] == [("70", "C", "9"), ("71", "B", "N/A")]


def test_negative_answer_far_below_zero_gets_distractors():
    """Question 24168 of the bench's seed has a negative answer with no non-negative neighbour: it used to loop forever
    (no coral dataset of more than 24,168 rows could be made); its distractors may now be negative."""
    q = questions.make_question(24168, 20250417)
    gold = q["options"][q["answer_index"]]
    assert float(gold) < 0
    assert 4 <= len(q["options"]) <= 10 and len(set(q["options"])) == len(q["options"])
    rng = random.Random(0)
    pool = questions._near_numbers(rng, -5000.0, [], questions.MAX_OPTIONS)
    assert len(pool) == questions.MAX_OPTIONS and "-5000" not in pool
