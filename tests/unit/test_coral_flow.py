"""Coral transitions, message view, turn counting, roles and metrics (unit tier).

The LLM is a fake ChatClient that answers from hand-written replies (no simulator,
no peers); the transition loop is driven by hand, as the runtime's worker does.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

import msgspec
import pytest
from omegaconf import OmegaConf

from slurmgen.agents.coral import WORKFLOW, flow, roles
from slurmgen.agents.coral.conf import AgreementRule, CoralConf
from slurmgen.agents.coral.data import Question
from slurmgen.agents.coral.parse import Extraction
from slurmgen.agents.coral.prompting import (
    agent_view,
    fill,
    kind_of,
    load_prompt,
    opening,
)
from slurmgen.agents.coral.state import CoralState
from slurmgen.config.load import typed, workflow_classes
from slurmgen.config.workflows import get_workflow
from slurmgen.errors import ConfigError, LLMError
from slurmgen.llm.types import ChatMessage, ChatReply, CompletionUsage, Sampling
from slurmgen.protocol import Orchestrator, Turn, Usage
from slurmgen.records import Record
from slurmgen.workflow import RoleContext, Status, Task
from tests.drive import drive

ROLES = {"teacher": roles.teacher_role, "student": roles.student_role,
         "extractor": roles.extractor_role, "matcher": roles.matcher_role}
QUESTION = Question(question_id=7, question="What is 6 x 7?", options=["41", "42", "43", "48"], answer="B")
SYSTEM = load_prompt("agent.txt")


def task(q: Question = QUESTION) -> Orchestrator:
    return Orchestrator(task_id=f"{q.question_id}:0", row_id=str(q.question_id), trial=0, seed=11, origin="p0",
                        row=msgspec.Raw(msgspec.json.encode(q)))


class CannedChat:
    """Agents answer from per-role reply lists (cycled); the extractor reads "(X)" back."""

    def __init__(self, teacher: list[str], student: list[str],
                 extract: Callable[[str], str] | None = None) -> None:
        self.replies = {"teacher": teacher, "student": student}
        self.extract = extract or self._final
        self.calls: list[tuple[str, list[ChatMessage], Sampling, str | None]] = []

    @staticmethod
    def _final(request: str) -> str:
        tail = request.split("**The message to read:**")[1]
        for letter in "ABCDEFGHIJ":
            if f"answer is ({letter})" in tail:
                return f"({letter})"
        return "not sure yet"

    @staticmethod
    def role_of(messages: list[ChatMessage]) -> str:
        if kind_of(messages) == "answer extractor":
            return "extractor"
        return "student" if messages[1].content == "hi" else "teacher"  # the opening is the student's

    async def chat(self, messages: list[ChatMessage], *, sampling: Sampling, seed: int | None = None,
                   sticky_key: str | None = None, **_: object) -> ChatReply:  # fmt: skip
        role = self.role_of(messages)
        if role == "extractor":
            content = self.extract(messages[-1].content or "")
        else:
            said = sum(1 for c in self.calls if c[0] == role)
            content = self.replies[role][said % len(self.replies[role])]
        self.calls.append((role, messages, sampling, sticky_key))
        usage = CompletionUsage(prompt_tokens=10 * len(messages), completion_tokens=len(content.split()))
        return ChatReply(content=content, usage=usage)


def converse(chat: object, conf: CoralConf | None = None, q: Question = QUESTION) -> Orchestrator:
    orch = task(q)
    ctx = RoleContext(llm=chat, conf=conf or CoralConf(), log=logging.getLogger("test"))  # type: ignore[arg-type]
    return asyncio.run(drive(WORKFLOW, ctx, orch))


def state_of(orch: Orchestrator) -> CoralState:
    return msgspec.json.decode(orch.state, type=CoralState)


# --- transition ----------------------------------------------------------------


def orch_with(*roles_: str, status: str = "running") -> Task[Question, CoralState]:
    o = task()
    o.history = [Turn(role=r) for r in roles_]
    o.status = Status(status)
    return Task(o, QUESTION, CoralState())


def test_transition_follows_the_reference_order():
    seq = ["student"]  # the opening
    assert flow.transition(orch_with()) == "student"
    expected = ["teacher", "extractor", "matcher", "student", "extractor", "matcher", "teacher", "extractor",
                "matcher", "student"]
    for want in expected:
        assert flow.transition(orch_with(*seq)) == want, seq
        seq.append(want)


@pytest.mark.parametrize("status", ["ok", "rejected", "failed"])
def test_terminal_status_ends_the_conversation(status):
    assert flow.transition(orch_with("student", "teacher", "extractor", "matcher", status=status)) is None
    assert flow.transition(orch_with(status=status)) is None


def test_the_workflow_is_registered_by_its_entry_point():
    wf = get_workflow("coral")
    assert wf is WORKFLOW and wf.conf is CoralConf
    assert set(wf.roles) == {"teacher", "student", "extractor", "matcher"}
    assert wf.row is Question and wf.transition is flow.transition


# --- message view --------------------------------------------------------------


def conv(n: int) -> list[Turn]:
    """The opening plus n LLM turns, alternating teacher/student."""
    speakers = ["student"] + [("teacher", "student")[i % 2] for i in range(n)]
    history: list[Turn] = []
    for i, who in enumerate(speakers):
        history.append(Turn(role=who, content=f"m{i}"))
        if i:  # extractor and matcher turns never show in an agent's view
            history += [Turn(role="extractor", content="(A)"), Turn(role="matcher")]
    return history


def matrix_view(history: list[Turn]) -> list[tuple[str, str]]:
    """Matrix's CoralAgent.preprocess: parity-based, with the dummy "hi"."""
    texts = [t.content for t in history if t.role in ("student", "teacher")]
    if len(texts) % 2 == 0:
        texts.insert(0, "hi")
    return [("user" if i % 2 == 0 else "assistant", text) for i, text in enumerate(texts)]


def test_teacher_first_turn_sees_the_opening_as_user():
    view = agent_view(conv(0), "teacher", SYSTEM)
    assert [(m.role, m.content) for m in view] == [("system", SYSTEM), ("user", "m0")]


def test_student_sees_a_dummy_hi_then_its_own_opening_as_assistant():
    view = agent_view(conv(1), "student", SYSTEM)
    assert [(m.role, m.content) for m in view] == [("system", SYSTEM), ("user", "hi"), ("assistant", "m0"),
                                                    ("user", "m1")]


@pytest.mark.parametrize("n", range(12))
def test_view_matches_matrix_and_ends_on_the_partner(n):
    history = conv(n)
    speaker = "teacher" if n % 2 == 0 else "student"  # who speaks next
    view = agent_view(history, speaker, SYSTEM)
    assert view[0] == ChatMessage(role="system", content=SYSTEM)
    assert [(m.role, m.content) for m in view[1:]] == matrix_view(history)
    assert view[-1].role == "user"
    assert all(a.role != b.role for a, b in itertools.pairwise(view[1:]))  # strictly alternating


def test_both_agents_get_the_same_system_prompt_and_sampling():
    chat = CannedChat(["The correct answer is (A)."], ["The correct answer is (B)."])
    converse(chat, CoralConf(max_turns=4))
    agents = [c for c in chat.calls if c[0] in ("teacher", "student")]
    assert {c[0] for c in agents} == {"teacher", "student"}
    assert {c[1][0].content for c in agents} == {SYSTEM}
    assert all(c[2] == Sampling(temperature=0.2, top_p=0.9, max_tokens=1024) for c in agents)
    extractor = [c for c in chat.calls if c[0] == "extractor"]
    assert all(c[2] == Sampling(temperature=0.0, top_p=1.0, max_tokens=32) for c in extractor)
    assert "Collaborative Reasoner - role: answer extractor" in (extractor[0][1][0].content or "")


def test_sticky_keys_name_the_role_and_the_task():
    chat = CannedChat(["The correct answer is (A)."], ["The correct answer is (B)."])
    converse(chat, CoralConf(max_turns=4))
    assert {c[3] for c in chat.calls} == {"teacher_7:0", "student_7:0", "extractor_7:0"}
    chat = CannedChat(["The correct answer is (A)."], ["The correct answer is (B)."])
    converse(chat, CoralConf(max_turns=4, sticky_routing=False))
    assert {c[3] for c in chat.calls} == {None}


# --- opening and prompts -------------------------------------------------------


def test_opening_is_a_template_by_the_student_without_an_llm_call():
    chat = CannedChat(["The correct answer is (B)."], ["The correct answer is (B)."])
    orch = converse(chat)
    first = orch.history[0]
    assert first.role == "student" and first.completion_tokens == 0
    assert first.content == opening(QUESTION, "opening.txt")
    assert '"What is 6 x 7?"' in first.content
    assert "(A) 41\n(B) 42\n(C) 43\n(D) 48" in first.content
    assert chat.calls[0][0] == "teacher"  # the first LLM call is the teacher's
    assert "student" not in orch.usage or orch.usage["student"].requests == 1


def test_extractor_request_holds_question_options_and_response():
    chat = CannedChat(["Six sevens... The correct answer is (B)."], ["The correct answer is (B)."])
    converse(chat)
    request = chat.calls[1][1][-1].content or ""
    assert chat.calls[1][0] == "extractor"
    assert "What is 6 x 7?" in request and "(D) 48" in request
    assert "Six sevens... The correct answer is (B)." in request
    assert "not sure yet" in request


def test_fill_is_one_pass_and_names_missing_slots():
    assert fill("<<QUESTION>> / <<OPTIONS>>", question="<<OPTIONS>>", options="x") == "<<OPTIONS>> / x"
    with pytest.raises(KeyError, match="RESPONSE"):
        fill("<<RESPONSE>>", question="q")


def test_prompt_may_be_an_absolute_path(tmp_path):
    own = tmp_path / "mine.txt"
    own.write_text('Q: "<<QUESTION>>"\n<<OPTIONS>>\n')
    assert opening(QUESTION, str(own)).startswith('Q: "What is 6 x 7?"\n(A) 41')


# --- turn counting, termination ------------------------------------------------


def test_immediate_agreement_ends_after_two_rated_turns():
    orch = converse(CannedChat(["The correct answer is (B)."], ["The correct answer is (B)."]))
    assert (orch.status, orch.reason) == ("ok", "agreement")
    assert [t.role for t in orch.history] == ["student", "teacher", "extractor", "matcher", "student",
                                              "extractor", "matcher"]
    assert orch.metrics == {"agreement": 1.0, "agreement_correctness": 1.0, "rated_turns": 2.0}
    st = state_of(orch)
    assert st.gold == "B" and st.rule == "matrix" and st.matched_answer == {"teacher": "B", "student": "B"}


def test_disagreement_runs_to_max_turns_as_matrix_counts():
    orch = converse(CannedChat(["The correct answer is (A)."], ["The correct answer is (C)."]))
    assert (orch.status, orch.reason) == ("ok", "max_turns")
    assert len(flow.agent_turns(orch.history)) == 20
    assert sum(t.role == "teacher" for t in orch.history) == 10
    assert sum(t.role == "student" for t in orch.history) == 11  # + the opening
    assert sum(t.role == "matcher" for t in orch.history) == 20
    assert len(orch.history) == 1 + 20 * 3
    assert orch.metrics["rated_turns"] == 20.0 and orch.metrics["agreement"] == 0.0
    assert orch.usage["teacher"].requests == 10 and orch.usage["extractor"].requests == 20


@pytest.mark.parametrize("max_turns", [1, 2, 5])
def test_max_turns_is_configurable(max_turns):
    orch = converse(CannedChat(["The correct answer is (A)."], ["The correct answer is (C)."]),
                    CoralConf(max_turns=max_turns))
    assert orch.reason == "max_turns"
    assert len(flow.agent_turns(orch.history)) == max_turns


def test_agreement_on_the_last_allowed_turn_counts_as_agreement():
    student = ["The correct answer is (C)."] * 9 + ["The correct answer is (A)."]
    orch = converse(CannedChat(["The correct answer is (A)."], student))
    assert orch.reason == "agreement" and orch.metrics["rated_turns"] == 20.0


@pytest.mark.parametrize("rule, reason, turns", [("matrix", "agreement", 4), ("coral", "max_turns", 4)])
def test_the_rules_differ_on_a_conversation_with_a_hedge(rule, reason, turns):
    teacher = ["The correct answer is (B).", "Hmm, I'm not sure yet."]
    student = ["The correct answer is (A).", "You convinced me. The correct answer is (B)."]
    orch = converse(CannedChat(teacher, student), CoralConf(max_turns=4, agreement_rule=AgreementRule(rule)))
    assert orch.reason == reason
    assert len(flow.agent_turns(orch.history)) == turns
    verdicts = [e.verdict for e in state_of(orch).extractions]
    assert verdicts == ["letter", "letter", "not_sure", "letter"]


def test_a_coral_run_agrees_once_the_hedging_side_answers_again():
    teacher = ["The correct answer is (B).", "Hmm, not sure yet.", "Yes. The correct answer is (B)."]
    student = ["The correct answer is (A).", "The correct answer is (B)."]
    orch = converse(CannedChat(teacher, student), CoralConf(agreement_rule=AgreementRule.coral))
    assert orch.reason == "agreement" and orch.metrics["rated_turns"] == 5.0


def test_llm_error_propagates_for_the_runtime_to_fail_the_task():
    class Failing:
        async def chat(self, messages: list[ChatMessage], **_: object) -> ChatReply:
            raise LLMError("replica gone after 4 retries")

    hop = WORKFLOW.new_task(task())
    ctx = RoleContext(llm=Failing(), conf=CoralConf(), log=logging.getLogger("test"))  # type: ignore[arg-type]
    asyncio.run(roles.student_role(hop, ctx))  # the opening needs no LLM
    with pytest.raises(LLMError):
        asyncio.run(roles.teacher_role(hop, ctx))
    orch = converse(Failing())  # the runtime makes it a failed record
    assert orch.status is Status.FAILED and orch.reason.startswith("llm_error: replica gone")


# --- metrics -------------------------------------------------------------------


def record(reason: str, *turns: tuple[str, int, str], status: str = "ok", metrics: dict | None = None) -> Record:
    """turns: (role, completion tokens, extractor verdict letter/""/"?") after the opening."""
    history = [Turn(role="student", content="opening")]
    for role, tokens, verdict in turns:
        history.append(Turn(role=role, content="...", completion_tokens=tokens))
        ex = Extraction(role=role, verdict="letter" if verdict not in ("", "?") else
                        ("not_sure" if verdict == "" else "invalid"), answer=verdict if verdict not in ("", "?") else "",
                        correct=verdict == "A")
        history.append(Turn(role="extractor", data=msgspec.Raw(msgspec.json.encode(ex)), completion_tokens=3))
        history.append(Turn(role="matcher"))
    usage = {"teacher": Usage(completion_tokens=sum(t for r, t, _ in turns if r == "teacher"))}
    return Record(task_id=f"{reason}:{len(turns)}", row_id="r", trial=0, status=status, reason=reason,
                  history=history, metrics=metrics or {}, usage=usage)


def test_metrics_numbers_on_hand_made_records():
    recs = [
        record("agreement", ("teacher", 100, "A"), ("student", 50, "A"),
               metrics={"agreement": 1.0, "agreement_correctness": 1.0}),
        record("agreement", ("teacher", 200, "B"), ("student", 100, ""), ("teacher", 300, "B"), ("student", 60, "B"),
               metrics={"agreement": 1.0, "agreement_correctness": 0.0}),
        record("max_turns", ("teacher", 40, "C"), ("student", 20, "?"),
               metrics={"agreement": 0.0, "agreement_correctness": 0.0}),
        record("llm_error: boom", ("teacher", 90, "A"), status="failed",
               metrics={"agreement": 0.0, "agreement_correctness": 0.0}),
        Record(task_id="line-9:0", row_id="line-9", trial=0, status="failed", reason="bad_input: line 9"),
    ]
    m = flow.metrics(recs)
    assert m["agreement"] == pytest.approx(2 / 5)
    assert m["agreement_correctness"] == pytest.approx(1 / 5)
    assert m["conv_err"] == 2.0 and m["error_rate"] == pytest.approx(2 / 5)
    assert m["total_turns"] == pytest.approx((2 + 4 + 2 + 1 + 0) / 5)
    # per conversation with turns: mean tokens per teacher / student turn, then the mean of those
    assert m["t_len"] == pytest.approx((100 + 250 + 40 + 90) / 4)
    assert m["s_len"] == pytest.approx((50 + 80 + 20 + 0) / 4)
    assert m["conv_len"] == pytest.approx((150 + 660 + 60 + 90) / 4)
    # 9 extractions: 6 letters, 1 hedge, 1 invalid ... and the failed one's letter
    assert m["valid_answer_rate"] == pytest.approx(7 / 9)
    assert m["correct_answer_rate"] == pytest.approx(3 / 9)
    assert m["ended_by_agreement"] == pytest.approx(2 / 5) and m["ended_by_max_turns"] == pytest.approx(1 / 5)


def test_metrics_of_nothing_are_zero():
    assert set(flow.metrics([]).values()) == {0.0}


def test_metrics_of_real_conversations_agree_with_their_records():
    agreed = converse(CannedChat(["The correct answer is (B)."], ["The correct answer is (B)."]))
    split = converse(CannedChat(["The correct answer is (A)."], ["The correct answer is (C)."]))
    recs = [Record(task_id=o.task_id, row_id=o.row_id, trial=0, status=o.status, reason=o.reason,
                   metrics=o.metrics, history=o.history) for o in (agreed, split)]
    m = flow.metrics(recs)
    assert m["agreement"] == 0.5 and m["agreement_correctness"] == 0.5
    assert m["total_turns"] == (2 + 20) / 2
    assert m["valid_answer_rate"] == 1.0


# --- config --------------------------------------------------------------------


def test_coral_is_registered_with_reference_defaults():
    assert workflow_classes()["coral"] is CoralConf
    conf = CoralConf()
    assert conf.max_turns == 20 and conf.agreement_rule is AgreementRule.matrix
    assert (conf.agent_sampling.temperature, conf.agent_sampling.top_p, conf.agent_sampling.max_tokens) == (0.2, 0.9,
                                                                                                            1024)
    assert (conf.extractor_sampling.temperature, conf.extractor_sampling.max_tokens) == (0.0, 32)


def test_agreement_rule_is_checked_by_the_typed_config():
    conf = typed(OmegaConf.create({"workflow": {"name": "coral", "agreement_rule": "coral"}, "run": {"dir": "x"}}))
    assert conf.workflow.agreement_rule is AgreementRule.coral
    with pytest.raises(ConfigError, match="matrix, coral"):
        typed(OmegaConf.create({"workflow": {"name": "coral", "agreement_rule": "majority"},
                               "run": {"dir": "x"}}))
