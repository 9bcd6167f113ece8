"""A new user's runs: what summary.json, the last line, `slurmgen status` and the exit code
say (issue 24 items 3, 7, 8, 9, 12, 13; issue 22's reasons by class and live tokens; issue
25's `status --output json`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiohttp import web

from slurmgen.exitcodes import Exit
from slurmgen.runtime.origin import task_seed
from tests.conftest import (
    REPO,
    count_records,
    read_records,
    run_own_workflow,
    run_slurmgen,
    slurmgen_processes,
)


def status(run_dir: Path, *extra: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "status", str(run_dir), *extra], check=False,
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_every_row_bad_exit_5_names_the_first_reason_and_counts_by_class(tmp_path):
    data = tmp_path / "ALL_BAD.jsonl"
    data.write_text("".join(json.dumps({"body": f"page {i}", "metadata": {"WARC-Record-ID": f"<u:{i}>"}}) + "\n"
                            for i in range(40)))
    run_dir = tmp_path / "run"
    proc = run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", check=False)
    assert proc.returncode == Exit.FAILURE_RATE, proc.stderr
    first = re.search(r"first reason: (.*?) \(all reasons in", proc.stderr).group(1)
    assert first.startswith("bad_input: line ") and "text" in first, proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["reasons"] == {"bad_input": 40}  # one key per class, not one per row
    assert summary["first_failure"] == first
    examples = summary["reason_examples"]["bad_input"]
    assert 1 <= len(examples) <= 3 and all(e.startswith("bad_input: line ") for e in examples)


METRICS_BUG = """
from dataclasses import dataclass, field

import msgspec

from slurmgen.workflow import Status, Workflow, WorkflowConf, add_turn, finish


class Row(msgspec.Struct):
    id: str

    def row_id(self):
        return self.id


@dataclass
class EchoConf(WorkflowConf):
    name: str = "echo"


async def echo(task, ctx):
    add_turn(task, "echo", None, data={"n": 1})
    finish(task, Status.OK, "done")


def transition(task):
    return None if task.history else "echo"


def metrics(records):
    return {"mean": sum(r.output.get("n") for r in records)}  # output is JSON bytes: AttributeError


WORKFLOW = Workflow(name="echo", conf=EchoConf, roles={"echo": echo}, transition=transition, metrics=metrics, row=Row)
"""


def test_a_bug_in_the_workflows_metrics_is_named_and_costs_no_file(tmp_path):
    proc = run_own_workflow(tmp_path, "echo=echo:WORKFLOW", METRICS_BUG, [{"id": f"r{i}"} for i in range(12)],
                            "llm.replicas=1")
    assert proc.returncode == Exit.METRICS_FAILED, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "a bug in the workflow, not in slurmgen" in proc.stderr and "workflow.metrics=echo:metrics raised " \
        "AttributeError" in proc.stderr, proc.stderr
    run_dir = tmp_path / "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_ok"] == 12 and summary["metrics"] == {}
    assert summary["metrics_error"].startswith("workflow.metrics=echo:metrics raised AttributeError")
    assert "a bug in the workflow" in (run_dir / "report.html").read_text()
    # export without SLURMGEN_WORKFLOWS: the run dir says where the workflow is
    env = {k: v for k, v in os.environ.items() if k not in ("SLURMGEN_WORKFLOWS", "PYTHONPATH")}
    out = subprocess.run([sys.executable, "-m", "slurmgen", "export", str(run_dir), "--out", str(tmp_path / "x.jsonl")],
                         check=False, capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0 and len((tmp_path / "x.jsonl").read_text().splitlines()) == 12, out.stderr
    (tmp_path / "echo.py").unlink()  # gone: the message says how to register it
    out = subprocess.run([sys.executable, "-m", "slurmgen", "export", str(run_dir), "--out", str(tmp_path / "y.jsonl")],
                         check=False, capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == Exit.REFUSED and "workflow 'echo' is not registered here" in out.stderr, out.stderr
    assert "SLURMGEN_WORKFLOWS=echo=echo:WORKFLOW" in out.stderr and f"PYTHONPATH={tmp_path}" in out.stderr


def test_throughput_figures_are_labelled_and_a_no_op_rerun_keeps_them(tmp_path):
    run_dir = tmp_path / "run"
    args = ("workflow=nr", "dataset.limit=60", f"run.dir={run_dir}", "llm.time_scale=100")
    last = run_slurmgen(*args).stdout.strip().splitlines()[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tokens_per_s"] > 0
    assert f"{summary['tokens_per_s']:.0f} tokens/s (over the driver's wall time, {summary['wall_s']:.1f} s, " \
           "startup and stop included)" in last, last
    text = status(run_dir)
    assert f"tokens/s in summary.json: {summary['tokens_per_s']:.0f} over the driver's wall time" in text, text
    assert re.search(r"tokens/s: \d+ now \(records of the last 30 s\), [1-9]\d* over the records' span", text)
    doc = json.loads(status(run_dir, "--output", "json"))  # what a script reads: the same figures
    assert doc["done"] == 60 and doc["by_status"] == {"ok": summary["tasks_ok"], "rejected": summary["tasks_rejected"]}
    assert doc["tokens_in_records"] == summary["prompt_tokens"] + summary["completion_tokens"] > 0
    assert doc["tokens_answered"] == doc["tokens_in_records"]  # every answered call is in a record at the end
    assert doc["tokens_per_s"]["driver_wall"] == summary["tokens_per_s"]
    assert f"tasks: {doc['done']} done" in text and f"{doc['tokens_in_records']} in records written" in text
    assert f"{doc['tokens_per_s']['records_span']:.0f} over the records' span" in text
    assert doc["summary"] == str(run_dir / "summary.json")

    again = run_slurmgen(*args)  # the same command on the finished run: nothing to do, nothing measured
    kept = json.loads((run_dir / "summary.json").read_text())
    assert kept["tasks_total"] == 60
    assert (kept["tokens_per_s"], kept["tasks_per_s"], kept["wall_s"]) == \
        (summary["tokens_per_s"], summary["tasks_per_s"], summary["wall_s"])
    assert "of the run started" in again.stdout.strip().splitlines()[-1]
    report = (run_dir / "report.html").read_text()
    assert f'<td>tokens_per_s</td><td class="n">{summary["tokens_per_s"]:,.0f}<' in report


def texts(run_dir: Path) -> dict[str, list[str]]:
    return {r.task_id: [t.content or "" for t in r.history] for r in read_records(run_dir)}


def verdicts(run_dir: Path) -> dict[str, tuple]:
    return {r.task_id: (r.status, r.reason, {k: (u.prompt_tokens, u.completion_tokens) for k, u in r.usage.items()})
            for r in read_records(run_dir)}


def test_run_seed_changes_the_simulated_texts_not_the_verdicts(tmp_path):
    runs = {seed: tmp_path / f"seed-{seed}" for seed in (0, 1)}
    for seed, run_dir in runs.items():
        run_slurmgen("workflow=nr", "dataset.limit=40", f"run.dir={run_dir}", f"run.seed={seed}",
                     "llm.time_scale=300")
    a, b = texts(runs[0]), texts(runs[1])
    long_replies = [k for k in a if any(len(t) > 400 for t in a[k])]  # score / question replies
    assert long_replies and sum(a[k] != b[k] for k in long_replies) >= len(long_replies) // 2
    assert verdicts(runs[0]) == verdicts(runs[1])  # NR's decisions and lengths are the document's


class Recorder:
    """An OpenAI-compatible server that answers "No" and records each request's seed."""

    def __init__(self) -> None:
        self.seeds: list[int | None] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.loop.run_until_complete(web.SockSite(runner, sock).start())
        ready.set()
        self.loop.run_forever()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seeds.append(body.get("seed"))
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": "No"},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})


def test_run_seed_is_sent_in_every_request_to_a_real_backend(tmp_path):
    server = Recorder()
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=nr", "dataset.limit=20", f"run.dir={run_dir}", "run.seed=7", "llm.backend=openai",
                 f"llm.urls=[http://127.0.0.1:{server.port}]", "llm.model=m")
    asked = [r for r in read_records(run_dir) if sum(u.requests for u in r.usage.values())]  # a language gate asks none
    assert asked and sorted(server.seeds) == sorted(task_seed(7, r.task_id) for r in asked)
    assert all(r.seed == task_seed(7, r.task_id) for r in asked)


def test_a_second_driver_on_a_run_in_use_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slurmgen", "workflow=nr", "dataset.limit=300", f"run.dir={run_dir}",
            "llm.time_scale=3", "run.lease_renew_s=0.5"]
    first = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and count_records(run_dir) < 5:
            time.sleep(0.2)
        second = subprocess.run(args, cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
        assert second.returncode == Exit.REFUSED, second.stderr
        assert f"in use by another driver: pid {first.pid} on host {socket.gethostname()}" in second.stderr
        live = json.loads(status(run_dir, "--output", "json"))  # tasks in flight have answered calls already
        assert live["tokens_answered"] > live["tokens_in_records"] and live["in_flight"] > 0, live
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(60) == Exit.INTERRUPTED
    assert not (run_dir / "state" / "driver.lock").exists()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run_dir / "state" / "driver.lock").write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "started_at": time.time()}))
    proc = run_slurmgen("workflow=nr", "dataset.limit=300", f"run.dir={run_dir}", "llm.time_scale=20",
                        "run.lease_renew_s=0.5", "run.progress_every_s=1")
    assert len(read_records(run_dir)) == 300 and slurmgen_processes(run_dir) == []
    # stderr is a pipe here: no bar, a line per run.progress_every_s
    line = re.compile(r"^progress: \d+/300 tasks \(\d+ %\), [\d.]+ tasks/s, \d+ tokens/s", re.MULTILINE)
    assert line.search(proc.stderr), proc.stderr
