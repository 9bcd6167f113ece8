"""Export shapes: a workflow without a rule for a shape is refused, naming the ones it has."""

import pytest

from slurmgen.agents.tau2.export import SHAPES as TAU2
from slurmgen.export.shapes import as_record, default_chat, resolve
from slurmgen.protocol import Turn
from slurmgen.records import Record


def test_a_missing_rule_names_the_shapes_the_workflow_has():
    assert resolve("chat", {}, "myflow") is default_chat
    with pytest.raises(ValueError, match=r"workflow 'tau2' has no 'sft' rule .*shapes it has: records, chat"):
        resolve("sft", TAU2, "tau2")


def test_records_keep_raw_json_as_values_and_chat_skips_empty_turns():
    rec = Record(task_id="a:0", row_id="a", trial=0, status="ok",
                 history=[Turn(role="filter", content="Yes"), Turn(role="judge")])
    assert as_record(rec)["output"] is None and as_record(rec)["history"][0]["content"] == "Yes"
    assert default_chat(rec) == {"task_id": "a:0", "messages": [{"role": "filter", "content": "Yes"}]}
