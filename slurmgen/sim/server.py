"""The simulator's HTTP server: the OpenAI chat API as vLLM serves it, over the latency Engine.

Routes: ``POST /v1/chat/completions`` (plain and ``stream: true`` SSE), ``GET /health``,
``GET /v1/models``, ``GET /metrics`` (Prometheus text, ``vllm:*`` names).

As a hosted API would, it can require a key (``api_key``: ``Authorization: Bearer KEY``,
else 401) and limit requests per minute (``rate_limit``, a token bucket holding
``rate_burst`` requests): a chat request over the limit is answered 429 with an
OpenAI-style error body and ``Retry-After`` (whole seconds until a request is allowed).

A request's reply is decided up front: the workflow's script (or the generic content)
writes the text or tool calls, its token count (bounded by ``max_tokens``) becomes the
request's length in the Engine, and one engine-loop task steps the Engine, sleeping
each step's modelled duration divided by ``time_scale`` (0 = never sleep). Tokens reach
the client as the Engine produces them; a client that reads slowly gets them several
to a chunk. Latency metrics are wall-clock seconds (multiply by ``time_scale`` for the
modelled GPU time).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import itertools
import logging
import math
import os
import random
import time
from typing import Any

import msgspec
from aiohttp import web

from slurmgen.llm.ratelimit import TokenBucket
from slurmgen.llm.types import ChatMessage, ToolCall
from slurmgen.proc.faults import fault
from slurmgen.sim import template
from slurmgen.sim.content import ReplyPlan, count_tokens, generic_reply, load_script
from slurmgen.sim.latency import PROFILES, Engine
from slurmgen.sim.script import ScriptReply, ScriptRequest

log = logging.getLogger("slurmgen.sim")

_MAX_LAG_S = 0.05  # the engine loop catches up at most this much lost sleep
_MESSAGE_OVERHEAD = 4  # chat-template tokens per message (role markers)
_REPLY_OVERHEAD = 3  # tokens opening the assistant turn


class SimOptions(msgspec.Struct, kw_only=True, frozen=True):
    model: str = "sim-llama-3.1-8b"
    profile: str = "a100-llama3.1-8b"
    time_scale: float = 20.0  # modelled seconds per wall second; 0 = no sleeping at all
    max_model_len: int = 131_072
    script: str = ""  # "package.module:function"; "" or "generic" = generic content
    seed: int = 0  # seeds the step-time jitter
    rate_limit: float = 0.0  # chat requests per minute; more are answered 429; 0 = no limit
    rate_burst: int = 0  # requests the limit lets through at once; 0 = one second's worth (at least 1)
    api_key: str = ""  # required as "Authorization: Bearer KEY" on /v1/*; "" = none
    # a chat request whose messages contain this text kills the server (exit code 0, as vLLM's
    # API server after an EngineDeadError): a poison request, for testing; "" = never
    die_on: str = ""
    prefix_caching: bool = True  # reuse the KV of cached prompt prefixes, as vLLM does by default
    # fcfs, or priority: requests' `priority` field orders the queue (vLLM's --scheduling-policy)
    scheduling_policy: str = "fcfs"
    block_size: int = 0  # tokens per KV block; 0 = the profile's (vLLM's --block-size)
    num_gpu_blocks: int = 0  # KV cache capacity in blocks; 0 = the profile's (vLLM's --num-gpu-blocks-override)


class _Part(msgspec.Struct, kw_only=True):
    type: str = "text"
    text: str = ""


class _InMessage(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[_Part] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def plain(self) -> ChatMessage:
        content = self.content
        if isinstance(content, list):
            content = "".join(p.text for p in content if p.type == "text")
        return ChatMessage(
            role=self.role, content=content, tool_calls=self.tool_calls, tool_call_id=self.tool_call_id, name=self.name
        )


class _StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ChatRequest(msgspec.Struct, kw_only=True):
    messages: list[_InMessage]
    model: str = ""
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 1.0
    seed: int | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: object = None
    response_format: dict[str, Any] | None = None
    priority: int = 0  # lower first, under --scheduling-policy priority (vLLM's extra field)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequestError",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.headers = headers


def error_response(exc: HTTPError) -> web.Response:
    body = {"error": {"message": str(exc), "type": exc.kind, "param": None, "code": exc.status}}
    return web.Response(status=exc.status, body=msgspec.json.encode(body), content_type="application/json",
                        headers=exc.headers)


def rate_bucket(options: SimOptions) -> TokenBucket | None:
    if options.rate_limit <= 0:
        return None
    if options.rate_burst > 0:
        return TokenBucket(options.rate_limit / 60.0, float(options.rate_burst))
    return TokenBucket.per_minute(options.rate_limit)


# vLLM's bucket boundaries, seconds.
# fmt: off
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                 40.0, 80.0, 160.0, 640.0, 2560.0)
_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
                960.0, 1920.0, 7680.0)
# fmt: on


class Histogram:
    """A Prometheus histogram (cumulative buckets, sum, count)."""

    def __init__(self, name: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.sum += value
        self.count += 1

    def render(self, labels: str) -> list[str]:
        lines = [f"# TYPE {self.name} histogram"]
        total = 0
        for le, n in zip(self.buckets, self.counts, strict=True):
            total += n
            lines.append(f'{self.name}_bucket{{{labels},le="{le}"}} {total}')
        lines.append(f'{self.name}_bucket{{{labels},le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum{{{labels}}} {self.sum}")
        lines.append(f"{self.name}_count{{{labels}}} {self.count}")
        return lines


class SimMetrics:
    """Request-level metrics; engine gauges and token counters are read at scrape time."""

    def __init__(self, model: str, time_scale: float) -> None:
        self.labels = "model_name=\"{}\"".format(model.replace("\\", "\\\\").replace('"', '\\"'))
        self.time_scale = time_scale
        self.ttft = Histogram("vllm:time_to_first_token_seconds", _TTFT_BUCKETS)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", _E2E_BUCKETS)
        self.success: dict[str, int] = {}  # finished_reason -> requests
        self.rate_limited = 0  # chat requests answered 429

    def finish(self, reason: str, e2e_s: float) -> None:
        self.success[reason] = self.success.get(reason, 0) + 1
        self.e2e.observe(e2e_s)

    def render(self, engine: Engine) -> str:
        c, lab = engine.counters, self.labels
        lines = [
            *_sample("vllm:num_requests_running", "gauge", lab, engine.running),
            *_sample("vllm:num_requests_waiting", "gauge", lab, engine.waiting),
            *_sample("vllm:kv_cache_usage_perc", "gauge", lab, engine.kv_usage),
            "# TYPE vllm:cache_config_info gauge",
            f'vllm:cache_config_info{{{lab},block_size="{engine.profile.block_size}",'
            f'num_gpu_blocks="{engine.profile.kv_blocks}",'
            f'enable_prefix_caching="{engine.pool.caching}"}} 1.0',
            *_sample("vllm:prompt_tokens_total", "counter", lab, c.prompt_tokens),
            *_sample("vllm:generation_tokens_total", "counter", lab, c.generation_tokens),
            *_sample("vllm:num_preemptions_total", "counter", lab, c.preemptions),
            *_sample("vllm:prefix_cache_queries_total", "counter", lab, engine.pool.counters.queries),
            *_sample("vllm:prefix_cache_hits_total", "counter", lab, engine.pool.counters.hits),
            "# TYPE vllm:request_success_total counter",
            *(
                f'vllm:request_success_total{{{lab},finished_reason="{r}"}} {n}'
                for r, n in sorted(self.success.items())
            ),
            *self.ttft.render(lab),
            *self.e2e.render(lab),
            *_sample("slurmgen_sim:time_scale", "gauge", lab, self.time_scale),
            *_sample("slurmgen_sim:engine_busy_seconds_total", "counter", lab, c.busy_s),
            *_sample("slurmgen_sim:engine_steps_total", "counter", lab, c.steps),
            *_sample("slurmgen_sim:rate_limited_total", "counter", lab, self.rate_limited),
        ]
        return "\n".join(lines) + "\n"


def _sample(name: str, kind: str, labels: str, value: float) -> list[str]:
    return [f"# TYPE {name} {kind}", f"{name}{{{labels}}} {value}"]


class _Live:
    """One request in flight: its reply plan and how far the Engine got."""

    __slots__ = ("event", "finish", "finished", "n_out", "plan", "priority", "produced", "prompt", "rid", "stream",
                 "t0", "t_first", "tokens")

    def __init__(self, rid: str, plan: ReplyPlan, n_out: int, prompt: int, finish: str) -> None:
        self.rid = rid
        self.plan = plan
        self.n_out = n_out
        self.prompt = prompt
        self.finish = finish
        self.tokens: list[str] = []  # prompt + reply tokens, for the prefix cache ([] = not cached)
        self.priority = 0
        self.stream = False  # wake the handler on every token, not only at the end
        self.produced = 0
        self.finished = False
        self.event = asyncio.Event()
        self.t0 = 0.0
        self.t_first = 0.0

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.n_out,
            "total_tokens": self.prompt + self.n_out,
        }


def prompt_tokens(messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> int:
    """Prompt length: every message's text and tool calls, plus chat-template overhead."""
    n = _REPLY_OVERHEAD
    for m in messages:
        n += _MESSAGE_OVERHEAD + count_tokens(m.content or "")
        for call in m.tool_calls or ():
            n += count_tokens(call.function.name) + count_tokens(call.function.arguments)
    if tools:
        n += count_tokens(msgspec.json.encode(tools).decode())
    return n


def request_rng(messages: list[ChatMessage], seed: int | None) -> random.Random:
    """The script's rng: a function of the request's seed and messages only."""
    h = hashlib.blake2b(str(seed).encode(), digest_size=8)
    h.update(msgspec.json.encode(messages))
    return random.Random(int.from_bytes(h.digest(), "big"))


class SimServer:
    """Engine + content + HTTP handlers. ``app()`` builds the aiohttp application."""

    def __init__(self, options: SimOptions) -> None:
        if options.profile not in PROFILES:
            raise ValueError(f"unknown profile {options.profile!r}; known: {', '.join(sorted(PROFILES))}")
        profile = PROFILES[options.profile]
        profile = msgspec.structs.replace(profile, block_size=options.block_size or profile.block_size,
                                          kv_blocks=options.num_gpu_blocks or profile.kv_blocks)
        if options.max_model_len > profile.kv_blocks * profile.block_size:
            raise ValueError(
                f"max_model_len {options.max_model_len} exceeds the KV cache of profile {options.profile!r} "
                f"({profile.kv_blocks * profile.block_size} tokens)"
            )
        self.options = options
        self.engine = Engine(profile, seed=options.seed, prefix_caching=options.prefix_caching,
                             policy=options.scheduling_policy)
        self.script = load_script(options.script)
        self.metrics = SimMetrics(options.model, options.time_scale)
        self._live: dict[str, _Live] = {}
        self._ids = itertools.count()
        self._id_prefix = f"chatcmpl-{os.getpid():x}{random.getrandbits(24):06x}-"
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._decode = msgspec.json.Decoder(ChatRequest)
        self._bucket = rate_bucket(options)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/metrics", self.scrape)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self._wake = asyncio.Event()
        self._loop_task = asyncio.create_task(self._engine_loop(), name="sim-engine")
        self._loop_task.add_done_callback(self._engine_ended)

    def _engine_ended(self, task: asyncio.Task[None]) -> None:
        """The engine loop is the server: if it fails, every request would wait forever. End the
        process at once (a graceful stop would wait for those requests), so that its clients'
        connections break, they retry elsewhere, and its supervisor restarts it."""
        if task.cancelled():
            return
        log.critical("sim engine loop ended: %r; stopping this server", task.exception(), exc_info=task.exception())
        logging.shutdown()
        os._exit(1)

    async def _stop(self, app: web.Application) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    # -- simple routes -------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def models(self, request: web.Request) -> web.Response:
        model = self.options.model
        card = {
            "id": model,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "slurmgen-sim",
            "root": model,
            "parent": None,
            "max_model_len": self.options.max_model_len,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def scrape(self, request: web.Request) -> web.Response:
        text = self.metrics.render(self.engine)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    # -- chat completions ----------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            self._admit(request)
            req = self._parse(await request.read())
            self._maybe_die(req)
            live = self._prepare(req)
            if live is None:  # the script said hang: never answer (until the client leaves)
                await asyncio.Event().wait()
                raise AssertionError("unreachable")
            live.stream = req.stream
            self._submit(live)
        except HTTPError as exc:
            return error_response(exc)
        try:
            if req.stream:
                include_usage = bool(req.stream_options and req.stream_options.include_usage)
                return await self._stream(request, live, include_usage)
            await live.event.wait()
            return web.Response(body=self._completion(live), content_type="application/json")
        finally:
            self._release(live)

    def _maybe_die(self, req: ChatRequest) -> None:
        marker = self.options.die_on
        if marker and any(marker in (m.plain().content or "") for m in req.messages):
            print(f"EngineDeadError: the engine died on a request containing {marker!r} (--die-on)", flush=True)
            os._exit(0)

    def _admit(self, request: web.Request) -> None:
        """The key first (a refused request costs no quota), then the rate limit."""
        if self.options.api_key:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.options.api_key.encode()):
                raise HTTPError(401, "Incorrect API key provided", "AuthenticationError")
        if self._bucket is None:
            return
        wait = self._bucket.delay(1)
        if wait > 0:
            self.metrics.rate_limited += 1
            raise HTTPError(429, f"Rate limit reached: {self.options.rate_limit:g} requests per minute; "
                            f"try again in {wait:.3f}s", "RateLimitError",
                            {"Retry-After": str(max(1, math.ceil(wait)))})  # as HTTP says: whole seconds
        self._bucket.take(1)

    def _parse(self, body: bytes) -> ChatRequest:
        try:
            req = self._decode.decode(body)
        except msgspec.DecodeError as exc:
            raise HTTPError(400, f"invalid request body: {exc}") from None
        if not req.messages:
            raise HTTPError(400, "`messages` must contain at least one message")
        if req.model and req.model != self.options.model:
            raise HTTPError(404, f"The model `{req.model}` does not exist.", "NotFoundError")
        return req

    def _prepare(self, req: ChatRequest) -> _Live | None:
        if req.priority and self.options.scheduling_policy != "priority":
            raise HTTPError(400, f"Got priority {req.priority} but Priority scheduling is not enabled.")
        messages = [m.plain() for m in req.messages]
        tokens = template.prompt_tokens(messages, req.tools) if self.options.prefix_caching else []
        n_prompt = len(tokens) if tokens else prompt_tokens(messages, req.tools)
        max_tokens = req.max_tokens if req.max_completion_tokens is None else req.max_completion_tokens
        limit = self.options.max_model_len
        if max_tokens is not None and max_tokens < 1:
            raise HTTPError(400, f"max_tokens must be at least 1, got {max_tokens}")
        wanted = n_prompt + (max_tokens or 0)
        if n_prompt >= limit or wanted > limit:
            raise HTTPError(
                400,
                f"This model's maximum context length is {limit} tokens. However, you requested {wanted} tokens "
                f"({n_prompt} in the messages, {max_tokens or 0} in the completion). "
                "Please reduce the length of the messages or completion.",
            )
        budget = max_tokens or limit - n_prompt
        reply = self._reply(req, messages, budget)
        if reply.hang:
            log.warning("sim script asked to hang: this request is never answered")
            return None
        plan = ReplyPlan(reply.content, reply.tool_calls)
        finish = "length" if plan.total > budget else reply.finish_reason
        if finish == "stop" and reply.tool_calls:
            finish = "tool_calls"
        n_out = max(1, min(plan.total, budget))
        live = _Live(f"{self._id_prefix}{next(self._ids)}", plan, n_out, n_prompt, finish)
        if tokens:
            live.tokens = tokens + template.reply_tokens(plan, n_out)
        live.priority = req.priority
        return live

    def _reply(self, req: ChatRequest, messages: list[ChatMessage], max_tokens: int) -> ScriptReply:
        sreq = ScriptRequest(
            model=self.options.model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=req.temperature,
            seed=req.seed,
            tools=req.tools,
            tool_choice=req.tool_choice,
            response_format=req.response_format,
        )
        rng = request_rng(messages, req.seed)
        try:
            reply = self.script(sreq, rng) if self.script is not None else None
            return reply if reply is not None else generic_reply(sreq, rng)
        except ValueError as exc:  # e.g. tool_choice names an unknown tool
            raise HTTPError(400, str(exc)) from None
        except Exception as exc:
            log.exception("sim script %s failed", self.options.script)
            raise HTTPError(500, f"sim script {self.options.script!r} failed: {exc!r}", "InternalServerError") from None

    def _submit(self, live: _Live) -> None:
        try:
            self.engine.add(live.rid, live.prompt, live.n_out, tokens=live.tokens, priority=live.priority)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        live.t0 = time.monotonic()
        self._live[live.rid] = live
        assert self._wake is not None
        self._wake.set()

    def _release(self, live: _Live) -> None:
        self._live.pop(live.rid, None)
        if not live.finished and self.engine.abort(live.rid):
            self.metrics.success["abort"] = self.metrics.success.get("abort", 0) + 1

    def _completion(self, live: _Live) -> bytes:
        content, calls = live.plan.message(live.n_out)
        message: dict[str, Any] = {"role": "assistant", "content": content, "tool_calls": calls}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": live.finish, "stop_reason": None}
        body = {
            "id": live.rid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.options.model,
            "choices": [choice],
            "usage": live.usage(),
        }
        return msgspec.json.encode(body)

    async def _stream(self, request: web.Request, live: _Live, include_usage: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        head = b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,"choices":' % (
            live.rid.encode(),
            int(time.time()),
            msgspec.json.encode(self.options.model),
        )
        await resp.write(head + b'[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n')
        try:
            await self._send_tokens(resp, head, live)
            if include_usage:
                await resp.write(head + b'[],"usage":%s}\n\n' % msgspec.json.encode(live.usage()))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client left; _release aborts the request
        return resp

    @staticmethod
    async def _send_tokens(resp: web.StreamResponse, head: bytes, live: _Live) -> None:
        """Write tokens as the engine produces them; whatever piled up while writing goes in one chunk."""
        sent = 0
        while True:
            await live.event.wait()
            live.event.clear()
            upto, finish = live.produced, (live.finish if live.finished else None)
            delta = live.plan.delta(sent, upto) if upto > sent else {}
            sent = upto
            if delta or finish:
                body = (msgspec.json.encode(delta), msgspec.json.encode(finish))
                await resp.write(head + b'[{"index":0,"delta":%s,"finish_reason":%s}]}\n\n' % body)
            if finish:
                return

    # -- the engine loop -----------------------------------------------------

    async def _engine_loop(self) -> None:
        assert self._wake is not None
        deadline = time.monotonic()
        while True:
            if not self.engine.has_work():
                self._wake.clear()
                await self._wake.wait()
                deadline = time.monotonic()
            fault("sim-engine")
            result = self.engine.step()
            deadline = await self._pace(result.duration_s, deadline)
            self._deliver(result.emitted, result.finished)

    async def _pace(self, duration_s: float, deadline: float) -> float:
        """Sleep one step's modelled time, scaled; keep an absolute schedule so rounding averages out."""
        scale = self.options.time_scale
        if scale <= 0 or duration_s <= 0:
            await asyncio.sleep(0)
            return time.monotonic()
        now = time.monotonic()
        deadline = max(deadline, now - _MAX_LAG_S) + duration_s / scale
        await asyncio.sleep(max(0.0, deadline - now))
        return deadline

    def _deliver(self, emitted: list[tuple[str, int]], finished: list[str]) -> None:
        now = time.monotonic()
        for rid, n in emitted:
            live = self._live.get(rid)
            if live is None:
                continue
            live.produced += n
            if not live.t_first:
                live.t_first = now
                self.metrics.ttft.observe(now - live.t0)
            if live.stream:
                live.event.set()
        for rid in finished:
            live = self._live.get(rid)
            if live is not None:
                live.finished = True
                self.metrics.finish(live.finish, now - live.t0)
                live.event.set()
