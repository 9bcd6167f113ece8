"""The vLLM command line a run renders: a tool-call parser when a role offering tools uses the
pool, the shipped tools-aware chat template by name, the user's own flags winning."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from slurmgen.config.load import register_all, typed
from slurmgen.errors import ConfigError
from slurmgen.run.plan import llm_spec

PARSER = ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]


def argv(*overrides: str, pool: str = "default") -> list[str]:
    register_all()
    with initialize_config_module(config_module="slurmgen.configs", version_base=None):
        conf = typed(compose(config_name="config", overrides=["llm.backend=vllm", "llm.model_path=/m",
                                                              "llm.extra_args=[--dtype,float32]", *overrides]))
    return llm_spec(conf, Path("/run"), 0, pool=pool).argv


def has(seq: list[str], part: list[str]) -> bool:
    return any(seq[i:i + len(part)] == part for i in range(len(seq)))


def test_tau2_pools_get_the_tool_parser_nr_does_not():
    assert has(argv("workflow=tau2"), PARSER)
    assert not has(argv("workflow=nr"), PARSER) and "--tool-call-parser" not in argv("workflow=nr")
    assert not has(argv("workflow=tau2", "llm.tool_call_parser=''"), PARSER)
    own = argv("workflow=tau2", "llm.extra_args=[--dtype,float32,--tool-call-parser,llama3_json]")
    assert own.count("--tool-call-parser") == 1 and "llama3_json" in own


def test_only_the_pool_of_a_tool_role_gets_it():
    overrides = ("workflow=tau2", "+llms.usersim.backend=vllm", "+llms.usersim.model=u",
                 "+llms.usersim.model_path=/u", "+llms.usersim.extra_args=[--dtype,float32]",
                 "+llms.usersim.tool_call_parser=pythonic", "+workflow.role_llm.user=usersim")
    assert has(argv(*overrides), PARSER)  # the agent's pool
    assert has(argv(*overrides, pool="usersim"), ["--tool-call-parser", "pythonic"])  # tau2's user has tools too


def test_the_shipped_chat_template_by_name_or_a_path(tmp_path: Path):
    cmd = argv("workflow=tau2", "llm.chat_template=chatml_tools")
    path = Path(cmd[cmd.index("--chat-template") + 1])
    assert path.name == "chatml_tools.jinja" and "<tool_call>" in path.read_text()
    own = tmp_path / "mine.jinja"
    own.write_text("{{ messages }}")
    cmd = argv("workflow=nr", f"llm.chat_template={own}")
    assert cmd[cmd.index("--chat-template") + 1] == str(own)
    with pytest.raises(ConfigError, match="chat_template='nope' is neither a shipped template \\(chatml_tools\\)"):
        argv("workflow=nr", "llm.chat_template=nope")


def test_priority_scheduling_and_prefix_caching_flags_reach_vllm_and_the_sim():
    """llm.scheduling_policy=priority starts the servers with vLLM's --scheduling-policy priority (the
    clients then send `priority`); llm.prefix_caching=false with --no-enable-prefix-caching. The sim
    parses the same flags."""
    from slurmgen.sim.__main__ import parse_args

    assert "--scheduling-policy" not in argv() and "--no-enable-prefix-caching" not in argv()
    assert has(argv("llm.scheduling_policy=priority"), ["--scheduling-policy", "priority"])
    assert has(argv("llm.prefix_caching=false"), ["--no-enable-prefix-caching"])
    sim = argv("llm.backend=sim", "llm.scheduling_policy=priority", "llm.prefix_caching=false",
               "llm.extra_args=[]")
    inner = sim[sim.index("--") + 1:]
    assert inner[1:3] == ["-m", "slurmgen.sim"]
    args = parse_args([a.replace("{host}", "127.0.0.1").replace("{port}", "0") for a in inner[3:]])
    assert args.scheduling_policy == "priority" and args.enable_prefix_caching is False


def test_an_unknown_scheduling_policy_or_routing_is_refused():
    from slurmgen.config.bounds import check_bounds

    register_all()
    with initialize_config_module(config_module="slurmgen.configs", version_base=None):
        conf = typed(compose(config_name="config", overrides=["llm.scheduling_policy=lifo", "llm.routing=random"]))
    with pytest.raises(ConfigError) as err:
        check_bounds(conf)
    assert "llm.scheduling_policy" in str(err.value) and "fcfs or priority" in str(err.value)
    assert "llm.routing" in str(err.value) and "least_outstanding" in str(err.value)
