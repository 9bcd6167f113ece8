"""Every message slurmgen sends between processes, as msgspec Structs.

One module, one tagged union per channel. Evolution rules (msgspec's): a new field gets
a default and is appended; a field never changes type; a tag never changes meaning.
Bump ``PROTOCOL_VERSION`` when a change breaks these rules.
"""

from __future__ import annotations

import enum

import msgspec

PROTOCOL_VERSION = 1

# ---------------------------------------------------------------------------
# Outcomes: a task's status, and the class of a failure. Their values are what records
# carry on disk (``status``, and the prefix of ``reason``: "<failure class>: <message>").


class _Str(str, enum.Enum):
    """A string enum that prints as its value (``f"{Failure.LOST}: ..."`` is "lost: ...")."""

    def __str__(self) -> str:
        return str(self.value)

    def __hash__(self) -> int:  # a member and its value are one key ({"ok": 1}[Status.OK])
        return hash(self.value)


class Status(_Str):
    RUNNING = "running"  # on its way (never in a record)
    OK = "ok"
    REJECTED = "rejected"  # the workflow decided against it (its reason says why)
    FAILED = "failed"  # something broke; ``reason`` starts with a Failure


TERMINAL = (Status.OK, Status.REJECTED, Status.FAILED)  # the statuses a record may have


class Failure(_Str):
    """Why a task failed: the first word of a failed record's ``reason``."""

    LLM_ERROR = "llm_error"  # an LLM request failed after its retries
    CONTEXT_TOO_LONG = "context_too_long"  # the server refused the prompt as too long
    BAD_REQUEST = "bad_request"  # a 4xx no retry fixes (max_tokens over the model's length, an unknown model)
    SERVER_DIED = "server_died"  # the LLM server dropped the request mid-way (died or restarted)
    ENGINE_DIED = "engine_died"  # the same request killed its server run.max_engine_deaths times (a poison request)
    TIMEOUT = "timeout"  # an LLM request got no reply in time
    RATE_LIMITED = "rate_limited"  # HTTP 429 on every attempt
    TOOL_ERROR = "tool_error"  # a tool-pool session could not be opened or called
    TOOL_LOST = "tool_lost"  # a tool-pool member holding the session died (toolpool.on_lost=fail)
    LOST = "lost"  # the task's message or its holder was lost
    INTERNAL = "internal"  # a role or the transition raised
    BAD_INPUT = "bad_input"  # the row could not be read or validated
    REWARD_ERROR = "reward_error"  # the workflow's grading raised (tau2)

    @classmethod
    def of(cls, reason: str) -> Failure | None:
        """The class a failed task's reason starts with ("llm_error: ..." -> LLM_ERROR); None if none."""
        head = reason.split(":", 1)[0].strip()
        return cls(head) if head in _FAILURES else None

    def reason(self, message: str) -> str:
        """The record's reason for this failure: "<class>: <message>"."""
        return f"{self.value}: {message}"


_FAILURES = frozenset(f.value for f in Failure)


# ---------------------------------------------------------------------------
# Payloads shared by several messages


class Usage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Token usage accumulated for one role of one task."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    truncated: int = 0  # replies cut at max_tokens (finish_reason "length")
    model: str = ""  # the served model that answered the role (its last request)
    pool: str = ""  # the LLM pool it belongs to


class SpillRef(msgspec.Struct, frozen=True, kw_only=True):
    """A payload moved to a node's LMDB: fetch it from a peer on ``node``."""

    node: str
    key: str
    size: int


class Turn(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One step of a task's history: what a role produced."""

    role: str
    content: str = ""
    # Workflow-defined structured output of the step (already JSON-encoded).
    data: msgspec.Raw = msgspec.Raw(b"null")
    tool_calls: msgspec.Raw = msgspec.Raw(b"null")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    at: float = 0.0
    model: str = ""  # the served model that produced the content ("" = no LLM call)
    pool: str = ""  # the LLM pool it belongs to
    # why the LLM stopped: stop | length (cut at max_tokens) | tool_calls | ... ("" = no LLM call)
    finish_reason: str = ""
    # llm.return_token_ids (vLLM): the prompt exactly as the model saw it, and its reply, in token ids
    prompt_token_ids: list[int] = []
    token_ids: list[int] = []
    content_ref: SpillRef | None = None  # set when content was spilled (content is then "" on the wire)


class Member(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A process in the registry table: an agent peer or a service."""

    peer_id: str
    kind: str  # "peer" | "llm" | "toolpool"
    address: str  # ZeroMQ inbox for peers, base URL for HTTP services
    node: str = ""
    roles: tuple[str, ...] = ()  # roles hosted (peers)
    capacity: int = 0  # concurrent handlers (peers) / requests (services)
    model: str = ""  # served model name (llm services)
    pool: str = ""  # the LLM pool it belongs to (llm services; slurmgen.config.pools)
    pid: int = 0


class SessionHandle(msgspec.Struct, frozen=True, kw_only=True):
    """A task's session on one tool-pool member (sticky: every call goes to ``member``)."""

    name: str  # the workflow's name for it (one task may hold several)
    member: str  # peer_id of the tool-pool member hosting it
    session: str  # "<task_id>#<attempt>/<name>": unique per attempt


# ---------------------------------------------------------------------------
# The orchestrator: one task travelling between peers


class KVUse(msgspec.Struct, array_like=True, frozen=True):
    """One conversation's KV after its last reply (slurmgen.llm.footprint)."""

    tokens: int  # prompt + reply tokens: what its server just cached
    shared: int  # of them, the leading part other conversations share (tools + first message)
    shared_id: int  # names that part


class Orchestrator(msgspec.Struct, tag="orch", kw_only=True, omit_defaults=True):
    """The task message. It carries everything a stateless role needs."""

    task_id: str  # "<row_id>:<trial>"
    row_id: str
    trial: int
    seed: int
    origin: str  # peer id that owns the task until its record is written
    attempt: int = 0  # lease generation; a late message of an older attempt is dropped
    next_role: str = ""  # "" once done
    step: int = 0
    row: msgspec.Raw = msgspec.Raw(b"null")  # the input row, as read
    state: msgspec.Raw = msgspec.Raw(b"null")  # workflow-defined state Struct, encoded
    history: list[Turn] = []
    usage: dict[str, Usage] = {}
    metrics: dict[str, float] = {}
    status: Status = Status.RUNNING
    reason: str = ""
    created_at: float = 0.0
    row_ref: SpillRef | None = None  # set when the row was spilled (row is then null on the wire)
    log: str = ""  # where a failure was logged: "<log file> task=<id>"
    # tool-pool sessions this task holds (closed by its origin when the record is written)
    sessions: list[SessionHandle] = []
    # its conversations' KV by conversation, recorded under llm.scheduling_policy=priority
    kv: dict[str, KVUse] = {}


class Credit(msgspec.Struct, tag="credit", kw_only=True):
    """Receiver -> sender: n handler slots were freed."""

    n: int = 1


class Hold(msgspec.Struct, tag="hold", kw_only=True):
    """Holder -> origin: these tasks of yours are alive here (renews their leases)."""

    task_ids: list[str]


class FetchBlobs(msgspec.Struct, tag="fetch", kw_only=True):
    """Ask a peer on the blobs' node for spilled payloads."""

    request_id: int
    keys: list[str]


class Blobs(msgspec.Struct, tag="blobs", kw_only=True):
    """The answer to FetchBlobs, in order; None where a key is unknown (freed or lost)."""

    request_id: int
    blobs: list[bytes | None]


class FreeBlobs(msgspec.Struct, tag="free", kw_only=True):
    """Origin -> a peer on the blobs' node: the task is written, drop these payloads."""

    keys: list[str]


PeerMessage = Orchestrator | Credit | Hold | FetchBlobs | Blobs | FreeBlobs


# ---------------------------------------------------------------------------
# Registry channel (ROUTER <-> DEALER) and its broadcast (PUB -> SUB)


class Register(msgspec.Struct, tag="register", kw_only=True):
    member: Member
    protocol: int = PROTOCOL_VERSION


class Heartbeat(msgspec.Struct, tag="heartbeat", kw_only=True):
    peer_id: str
    load: int = 0


class Unregister(msgspec.Struct, tag="unregister", kw_only=True):
    peer_id: str


class Lookup(msgspec.Struct, tag="lookup", kw_only=True):
    pass


class Table(msgspec.Struct, tag="table", kw_only=True):
    """The membership table; pushed on change and answered to Lookup."""

    version: int
    members: list[Member]


class Refused(msgspec.Struct, tag="refused", kw_only=True):
    reason: str


class Welcome(msgspec.Struct, tag="welcome", kw_only=True):
    heartbeat_s: float
    table: Table


class Stats(msgspec.Struct, tag="stats", kw_only=True):
    """Ask a process what it received (answered with StatsReply)."""


class StatsReply(msgspec.Struct, tag="stats_reply", kw_only=True):
    received: dict[str, int]


RegistryRequest = Register | Heartbeat | Unregister | Lookup | Stats
RegistryReply = Welcome | Refused | Table | StatsReply


# ---------------------------------------------------------------------------
# Tool-pool channel (client DEALER -> pool member ROUTER, and back)


class SessionOpen(msgspec.Struct, tag="session_open", kw_only=True):
    """Create a session with the pool's factory; ``spec`` is its (JSON) argument. The member
    opens one at a time within its capacity (``slurmgen.toolpool.admission``); an open that
    must wait is queued and told so, unless ``wait`` is false and the member has no room:
    then it is refused ("full") and the client asks another member."""

    request_id: int
    session: str
    spec: msgspec.Raw = msgspec.Raw(b"null")
    wait: bool = True


class SessionCall(msgspec.Struct, tag="session_call", kw_only=True):
    """Call ``method`` of an open session with JSON ``args``."""

    request_id: int
    session: str
    method: str
    args: msgspec.Raw = msgspec.Raw(b"null")


class SessionClose(msgspec.Struct, tag="session_close", kw_only=True):
    """Drop a session (no reply). Closing an unknown session is not an error."""

    session: str


class SessionReply(msgspec.Struct, tag="session_reply", kw_only=True, omit_defaults=True):
    """Answer to SessionOpen / SessionCall. ``error`` is "" on success; ``kind`` classifies
    a failure: "unknown" (no such session: the member restarted or dropped it), "full"
    (no room and the open would not wait), "error" (the factory or the method raised).
    ``kind="queued"`` is not an answer but a notice: the open waits in the member's queue;
    its answer (same ``request_id``) follows when it is opened."""

    request_id: int
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: str = ""
    kind: str = ""


ToolRequest = SessionOpen | SessionCall | SessionClose
ToolReply = SessionReply
