import msgspec
import pytest

from slurmgen.protocol import (
    PROTOCOL_VERSION,
    Credit,
    Heartbeat,
    Member,
    Orchestrator,
    Register,
    Table,
    Turn,
    Usage,
)
from slurmgen.transport import codec


def make_orch() -> Orchestrator:
    return Orchestrator(
        task_id="doc-1:0", row_id="doc-1", trial=0, seed=42, origin="peer-0.ab", next_role="score",
        row=msgspec.Raw(b'{"text":"hello"}'), history=[Turn(role="filter", content="Yes", completion_tokens=1)],
        usage={"filter": Usage(prompt_tokens=10, completion_tokens=1, requests=1)},
    )


def test_orchestrator_round_trip_keeps_every_field():
    orch = make_orch()
    back = codec.peer_decoder().decode(codec.encode(orch))
    assert isinstance(back, Orchestrator)
    assert back.task_id == orch.task_id and back.next_role == "score"
    assert bytes(back.row) == b'{"text":"hello"}'
    assert back.history[0].content == "Yes"
    assert back.usage["filter"].prompt_tokens == 10


def test_credit_and_registry_messages_are_distinguished_by_tag():
    dec = codec.peer_decoder()
    assert isinstance(dec.decode(codec.encode(Credit(n=3))), Credit)
    reg = codec.registry_request_decoder()
    member = Member(peer_id="p", kind="peer", address="tcp://127.0.0.1:1", roles=("a",), capacity=4)
    msg = reg.decode(codec.encode(Register(member=member)))
    assert isinstance(msg, Register) and msg.protocol == PROTOCOL_VERSION and msg.member.roles == ("a",)


@pytest.mark.parametrize("frame", [b"", b"\xff\xff", b"garbage", codec.encode(Heartbeat(peer_id="x"))])
def test_malformed_or_foreign_frames_are_refused_not_raised(frame):
    dec = codec.peer_decoder()
    assert dec.decode(frame) is None
    assert dec.refused == 1


def test_truncated_frame_is_refused():
    frame = codec.encode(make_orch())
    dec = codec.peer_decoder()
    for cut in (1, len(frame) // 2, len(frame) - 1):
        assert dec.decode(frame[:cut]) is None
    assert dec.refused == 3


def test_oversized_frame_is_refused(monkeypatch):
    monkeypatch.setattr(codec, "MAX_FRAME_BYTES", 10)
    dec = codec.registry_reply_decoder()
    assert dec.decode(codec.encode(Table(version=1, members=[]))[:9] + b"x" * 20) is None


def test_no_pickle_on_the_wire():
    class NotAStruct:
        pass

    with pytest.raises(TypeError):
        codec._encoder.encode(NotAStruct())
