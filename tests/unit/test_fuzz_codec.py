"""Property-based fuzzing of the codec: random, truncated and wrong-typed frames never raise."""

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from slurmgen.protocol import Credit, Hold, Orchestrator, Turn, Usage
from slurmgen.transport import codec

text = st.text(max_size=200)
turns = st.builds(Turn, role=text, content=text, prompt_tokens=st.integers(0, 10**9),
                  completion_tokens=st.integers(0, 10**9), at=st.floats(allow_nan=False, allow_infinity=False))
orchs = st.builds(
    Orchestrator, task_id=text, row_id=text, trial=st.integers(0, 1000), seed=st.integers(0, 2**63 - 1),
    origin=text, next_role=text, step=st.integers(0, 10**6), history=st.lists(turns, max_size=5),
    usage=st.dictionaries(text, st.builds(Usage, prompt_tokens=st.integers(0, 10**9)), max_size=3),
    status=st.sampled_from(["running", "ok", "rejected", "failed"]), reason=text,
)


@given(orchs)
@settings(max_examples=200)
def test_every_orchestrator_round_trips(orch):
    back = codec.peer_decoder().decode(codec.encode(orch))
    assert back == orch


@given(st.binary(max_size=2048))
@settings(max_examples=500)
def test_random_bytes_never_raise(frame):
    for dec in (codec.peer_decoder(), codec.registry_request_decoder(), codec.registry_reply_decoder()):
        dec.decode(frame)  # returns a message or None, never raises


@given(orchs, st.data())
@settings(max_examples=200)
def test_truncated_frames_are_refused(orch, data):
    frame = codec.encode(orch)
    cut = data.draw(st.integers(0, len(frame) - 1))
    dec = codec.peer_decoder()
    assert dec.decode(frame[:cut]) is None and dec.refused == 1


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)


@given(st.dictionaries(st.sampled_from(["type", "task_id", "n", "task_ids", "trial", "history", "keys"]),
                       json_values, max_size=6),
       st.sampled_from(["orch", "credit", "hold", "fetch", "blobs", "free", "nope"]))
@settings(max_examples=300)
def test_wrong_types_under_a_valid_tag_are_refused_or_typed(body, tag):
    body["type"] = tag
    msg = codec.peer_decoder().decode(msgspec.json.encode(body))
    assert msg is None or isinstance(msg, (Orchestrator, Credit, Hold)) or type(msg).__name__ in (
        "FetchBlobs", "Blobs", "FreeBlobs")
