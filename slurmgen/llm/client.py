"""The async OpenAI-compatible chat client, spread over the replicas of a model.

Speaks ``POST {url}/v1/chat/completions`` as vLLM, SGLang, the simulator and OpenAI
accept it. One ``LLMClient`` per process; ``set_endpoints`` may be called at any time
(the registry adds and removes replicas live).

Routing (``routing``): ``prefix`` sends a request to the replica holding the longest part
of its prompt, with a load fallback (slurmgen.llm.affinity); ``least_outstanding`` to the
healthy replica with the fewest outstanding requests, ties taken in turn; ``sticky``, for a
request with a ``sticky_key``, rendezvous hashing of the key over the current healthy
replicas (the same key keeps its replica — and its prefix cache — while that replica
lives; removing a replica only moves its own keys), with bounded loads: a replica
already holding more than ``sticky_load_factor`` times the mean of outstanding requests
is passed over for the key's next choice, so that unlucky keys cannot pile up on one
replica while the others idle (without a key: the least outstanding). With
``send_priority`` every request carries its conversation's ``priority``. Each replica has a concurrency cap
(the smallest non-zero of ``Endpoint.capacity``, ``max_concurrency_per_endpoint`` and
``max_connections_per_endpoint``).

Connections: HTTP/1.1 holds one connection per request in flight (kept alive and reused).
Requests over a replica's cap, or over the process's socket budget (its open-file limit less
a reserve, slurmgen.proc.fdlimit), wait in the client in order instead of opening more sockets;
the request timeout starts once a request has its connection.

Limits: every attempt passes the pool's ``Limiter`` first (slurmgen.llm.ratelimit:
requests and tokens per minute, requests in flight over the pool; unlimited by default).

Failures: 429, 5xx, connection errors, unreadable replies and timeouts are retried up
to ``max_retries`` times, preferring a replica not tried yet, after an exponential
backoff with jitter (a refused connection with another replica available is retried at
once). A 429's ``Retry-After`` (or ``retry-after-ms``) pauses the whole pool — every
attempt of this client waits until it has passed — and a request whose last attempt got
429 raises ``LLMError(kind="rate_limited")``; another status's ``Retry-After`` delays
that request only. A replica that refuses connections is avoided for ``down_s``. A 400
saying the context is too long raises ``LLMError(kind=Failure.CONTEXT_TOO_LONG)`` at once;
other 4xx (``max_tokens`` above the model's length, an unknown model: no retry can fix them)
raise ``LLMError(kind=Failure.BAD_REQUEST)`` at once. A request whose server dropped it mid-way
(disconnected, connection reset: the server died or restarted) ends, once its retries are
spent or at its second server death, as ``LLMError(kind=Failure.SERVER_DIED)``: its task's
origin counts such deaths (slurmgen.runtime.origin, a poison request).

Unreachable replicas (a node lost or cut off): each replica has its own connections,
closed when it leaves the replica list (the registry expired it), which fails its
requests in flight, retried at once elsewhere; and every connection has TCP keepalive
and a user timeout of ``unreachable_s``, so that a request to a replica that stopped
answering fails after that long even when no one says it left (this node is the one cut
off), and a connect attempt gives up as soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import math
import random
import socket
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import aiohttp
import msgspec

from slurmgen.errors import LLMError
from slurmgen.llm.affinity import DEFAULT_ROUTING, PrefixIndex, Routing, TaskAges, message_chain
from slurmgen.llm.footprint import CURRENT_TASK, kv_use
from slurmgen.llm.ratelimit import Limiter, LimiterStats, estimate_tokens, share
from slurmgen.llm.types import ChatMessage, ChatReply, CompletionUsage, Endpoint, EndpointStats, Sampling, ToolCall
from slurmgen.proc import fdlimit
from slurmgen.protocol import Failure

_RETRY_STATUS = frozenset({408, 425})  # plus every 5xx, and 429 (as rate_limited)
_CONTEXT_MARKERS = (
    "context length",  # vLLM, OpenAI
    "context_length_exceeded",  # OpenAI error code
    "maximum model length",  # vLLM: "longer than the maximum model length"
    "exceeds the maximum allowed length",  # SGLang
    "prompt is too long",
)
_MAX_RETRY_AFTER_S = 60.0
# a request whose server died under it this many times is given up at once (a poison request would
# otherwise kill a fresh server on every retry); its task's origin decides whether to try again
MAX_DEATHS_PER_REQUEST = 2


class _Message(msgspec.Struct, kw_only=True):
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class _Choice(msgspec.Struct, kw_only=True):
    message: _Message
    finish_reason: str | None = None
    token_ids: list[int] | None = None  # vLLM with return_token_ids


class _Completion(msgspec.Struct, kw_only=True):
    choices: list[_Choice]
    usage: CompletionUsage | None = None
    prompt_token_ids: list[int] | None = None  # vLLM with return_token_ids


class _AttemptFailed(Exception):
    """One attempt failed in a way another attempt may not."""

    def __init__(self, message: str, *, kind: Failure = Failure.LLM_ERROR, refused: bool = False, retry_after: float = 0.0):
        super().__init__(message)
        self.kind = kind
        self.refused = refused
        self.retry_after = retry_after


class _Route(NamedTuple):
    sticky_key: str | None  # routing=sticky: the conversation's key
    chain: tuple[list[int], list[int]] | None  # routing=prefix: the prompt's message chain


class _Replica:
    __slots__ = ("down_until", "endpoint", "left", "outstanding", "prefixes", "sem", "session", "stats")

    def __init__(self, endpoint: Endpoint, cap: int, stats: EndpointStats) -> None:
        self.endpoint = endpoint
        self.outstanding = 0  # requests assigned (sending or queued on the cap)
        self.sem = asyncio.Semaphore(cap) if cap > 0 else None
        self.down_until = 0.0
        self.stats = stats
        self.session: aiohttp.ClientSession | None = None  # its own connections
        self.left = False  # no longer in the replica list: its requests are retried elsewhere
        self.prefixes = PrefixIndex()  # the prompts sent here (routing=prefix)


def _keepalive_socket(unreachable_s: float) -> Any:
    """A socket factory: TCP keepalive probes and a user timeout, so that a silent peer is
    given up after about ``unreachable_s`` (Linux; elsewhere plain keepalive)."""

    def make(addr_info: Any) -> socket.socket:
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family, type_, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle = max(1, int(unreachable_s / 3))
        for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", max(1, idle // 2)), ("TCP_KEEPCNT", 3),
                            ("TCP_USER_TIMEOUT", int(unreachable_s * 1000))):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        return sock

    return make


def _rendezvous(key: str, url: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}\0{url}".encode(), digest_size=8).digest(), "big")


def _error_message(raw: bytes) -> str:
    """The message of an OpenAI-style (``{"error": {...}}``) or vLLM-style error body."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw[:300].decode(errors="replace")
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
    return raw[:300].decode(errors="replace")


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds a reply asks to wait: ``retry-after-ms`` (OpenAI), else ``Retry-After`` in seconds or
    as an HTTP date; 0 = none (or unreadable: our own backoff applies); at most 60 s."""
    value, scale = headers.get("retry-after-ms"), 0.001
    if value is None:
        value, scale = headers.get("Retry-After"), 1.0
    if not value:
        return 0.0
    try:
        seconds = float(value) * scale
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S) if math.isfinite(seconds) else 0.0


class LLMClient:
    """Chat completions over every healthy replica; see the module docstring."""

    def __init__(
        self,
        *,
        request_timeout_s: float = 600.0,
        unreachable_s: float = 10.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_concurrency_per_endpoint: int = 0,
        max_connections_per_endpoint: int = 0,
        api_key: str | None = None,
        endpoint_wait_s: float = 120.0,
        route: Routing = DEFAULT_ROUTING,
        pool: str = "default",
        limiter: Limiter | None = None,
        return_token_ids: bool = False,
    ) -> None:
        self.pool = pool  # the LLM pool this client speaks to (replies and stats name it)
        self.return_token_ids = return_token_ids  # ask vLLM for the prompt's and the reply's token ids
        self.request_timeout_s = request_timeout_s
        self.unreachable_s = unreachable_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_concurrency_per_endpoint = max_concurrency_per_endpoint
        self.max_connections_per_endpoint = max_connections_per_endpoint  # this process's sockets to one replica
        self.socket_budget = fdlimit.connection_budget()  # this process's sockets to every replica
        self._sockets = asyncio.Semaphore(self.socket_budget)
        self.endpoint_wait_s = endpoint_wait_s  # how long chat() waits for a first replica
        self.down_s = 2.0  # a replica refusing connections is avoided this long
        self.route = route  # which replica a request goes to (see the module docstring)
        self._ages = TaskAges()
        self.record_kv = False  # record each conversation's KV in its task (llm.scheduling_policy=priority)
        self.limiter = limiter or Limiter()  # the pool's rpm / tpm / in-flight limits and 429 pauses
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._replicas: dict[str, _Replica] = {}
        self._stats: dict[str, EndpointStats] = {}
        self._changed = asyncio.Event()
        self._turn = 0
        self._rng = random.Random()
        self._closing: set[asyncio.Task[None]] = set()  # sessions of replicas that left, being closed
        self._decoder = msgspec.json.Decoder(_Completion)

    @classmethod
    def from_conf(cls, conf: Any, api_key: str | None = None, pool: str = "default", peers: int = 1) -> LLMClient:
        """Build from an ``LLMConf`` (or anything with its client fields).

        ``conf.rpm``, ``conf.tpm``, ``conf.max_concurrency`` and ``conf.max_connections_per_replica``
        are the pool's limits over the whole run: this process, one of ``peers`` using the pool, gets
        an even share of each.
        """
        limiter = Limiter(share(conf.rpm, peers), share(conf.tpm, peers), int(share(conf.max_concurrency, peers)))
        return cls(
            pool=pool,
            request_timeout_s=conf.request_timeout_s,
            unreachable_s=conf.unreachable_s,
            max_retries=conf.max_retries,
            backoff_s=conf.backoff_s,
            max_concurrency_per_endpoint=conf.max_concurrency_per_endpoint,
            max_connections_per_endpoint=math.ceil(share(conf.max_connections_per_replica, peers)),
            api_key=api_key,
            endpoint_wait_s=conf.ready_timeout_s,
            route=Routing(policy=conf.routing, sticky_load_factor=conf.sticky_load_factor,
                          prefix_match=conf.prefix_match, balance_abs=conf.balance_abs, balance_rel=conf.balance_rel,
                          send_priority=conf.scheduling_policy == "priority"),
            limiter=limiter,
            return_token_ids=conf.return_token_ids,
        )

    # -- replicas ------------------------------------------------------------

    def set_endpoints(self, endpoints: list[Endpoint]) -> None:
        """Replace the replica list. Requests in flight on a replica that stays finish there;
        those on a replica that left fail and are retried elsewhere."""
        replicas: dict[str, _Replica] = {}
        for ep in endpoints:
            current = self._replicas.get(ep.url)
            if current is None or current.endpoint != ep:
                stats = self._stats.setdefault(ep.url, EndpointStats(pool=self.pool, model=ep.model))
                current = _Replica(ep, self._cap(ep), stats)
            replicas[ep.url] = current
        for old in self._replicas.values():
            if replicas.get(old.endpoint.url) is not old:
                self._retire(old)
        self._replicas = replicas
        self._changed.set()
        self._changed = asyncio.Event()

    def _retire(self, replica: _Replica) -> None:
        replica.left = True
        session, replica.session = replica.session, None
        if session is not None:  # closing its connections fails the requests still waiting on them
            task = asyncio.get_running_loop().create_task(session.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def endpoints(self) -> list[Endpoint]:
        return [r.endpoint for r in self._replicas.values()]

    def stats(self) -> dict[str, EndpointStats]:
        """Counters per replica URL, including replicas removed since."""
        return dict(self._stats)

    def limiter_stats(self) -> LimiterStats:
        """What the pool's limiter did: attempts that waited, seconds waited, 429 pauses."""
        return self.limiter.stats

    def outstanding(self) -> dict[str, int]:
        return {url: r.outstanding for url, r in self._replicas.items()}

    def _cap(self, ep: Endpoint) -> int:
        caps = [c for c in (ep.capacity, self.max_concurrency_per_endpoint, self.max_connections_per_endpoint) if c > 0]
        return min(caps) if caps else 0

    # -- requests ------------------------------------------------------------

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        sampling: Sampling,
        seed: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: object = None,
        response_format: dict[str, Any] | None = None,
        sticky_key: str | None = None,
        model: str | None = None,
    ) -> ChatReply:
        """One chat completion, retried across replicas; raises ``LLMError``."""
        body = self._body(messages, sampling, seed, tools, tool_choice, response_format)
        if self.route.send_priority:
            body = b'{"priority":%d,%s' % (self._ages.priority(sticky_key), body[1:])
        route = _Route(sticky_key if self.route.policy == "sticky" else None,
                       message_chain(messages, tools) if self.route.policy == "prefix" else None)
        estimate = estimate_tokens(body, sampling.max_tokens)
        failures: list[str] = []
        tried: set[str] = set()
        died = 0  # attempts whose server dropped it mid-request
        for attempt in range(self.max_retries + 1):
            permit = await self.limiter.acquire(estimate)
            try:
                replica = await self._pick(model, route, tried)
                reply = await self._send(replica, body)
                permit.done(reply.usage.prompt_tokens + reply.usage.completion_tokens)
                if self.record_kv:
                    self._record_kv(messages, tools, sticky_key, reply, len(body))
                return reply
            except _AttemptFailed as exc:
                failed = exc
                if exc.kind is Failure.RATE_LIMITED:
                    self.limiter.pause(exc.retry_after)  # the whole pool waits, not only this request
            finally:
                permit.done()
            failures.append(f"{replica.endpoint.url}: {failed}")
            tried.add(replica.endpoint.url)
            died += failed.kind is Failure.SERVER_DIED
            if attempt == self.max_retries or died == MAX_DEATHS_PER_REQUEST:
                raise LLMError(self._give_up(failures), kind=Failure.SERVER_DIED if died else failed.kind) from None
            replica.stats.retries += 1
            await asyncio.sleep(self._delay(attempt, failed, model, tried))
        raise AssertionError("unreachable")

    @staticmethod
    def _record_kv(messages: list[ChatMessage], tools: list[dict[str, Any]] | None, sticky_key: str | None,
                   reply: ChatReply, body_bytes: int) -> None:
        """The conversation's size now (prompt + reply: what its server just cached), in its task's message."""
        orch = CURRENT_TASK.get()
        if orch is not None:
            tokens = reply.usage.prompt_tokens + reply.usage.completion_tokens
            orch.kv[sticky_key or ""] = kv_use(messages, tools, tokens, prompt_bytes=body_bytes)

    def _give_up(self, failures: list[str]) -> str:
        shown = "; ".join(failures[-4:])
        return f"LLM request failed after {len(failures)} attempts ({shown})"

    def _body(self, messages: list[ChatMessage], sampling: Sampling, seed: int | None, *extra: Any) -> bytes:
        """The request JSON without ``model`` (added per replica); ``extra`` = tools, tool_choice, response_format."""
        body: dict[str, Any] = {
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        for key, value in zip(("tools", "tool_choice", "response_format"), extra, strict=True):
            if value is not None:
                body[key] = value
        if seed is not None:
            body["seed"] = seed
        if self.return_token_ids:
            body["return_token_ids"] = True
        return msgspec.json.encode(body)

    async def _pick(self, model: str | None, route: _Route, tried: set[str]) -> _Replica:
        candidates = await self._candidates(model)
        now = time.monotonic()
        healthy = [r for r in candidates if r.down_until <= now] or candidates
        fresh = [r for r in healthy if r.endpoint.url not in tried] or healthy
        if route.chain is not None:
            return self._by_prefix(route.chain, fresh)
        if route.sticky_key is not None:
            return self._sticky(route.sticky_key, fresh)
        return self._least_loaded(fresh)

    def _least_loaded(self, replicas: list[_Replica]) -> _Replica:
        least = min(r.outstanding for r in replicas)
        ties = [r for r in replicas if r.outstanding == least]
        self._turn += 1
        return ties[self._turn % len(ties)]

    def _by_prefix(self, chain: tuple[list[int], list[int]], replicas: list[_Replica]) -> _Replica:
        """vllm-router's cache_aware choice (module slurmgen.llm.affinity); remembers the chain sent."""
        hashes, ends = chain
        loads = [r.outstanding for r in replicas]
        chosen = None
        if not (max(loads) > self.route.balance_abs and max(loads) > self.route.balance_rel * min(loads)) and ends:
            matched = {r.endpoint.url: r.prefixes.match(hashes) for r in replicas}
            best = max(matched.values())
            if best and ends[best - 1] > self.route.prefix_match * ends[-1]:
                chosen = self._least_loaded([r for r in replicas if matched[r.endpoint.url] == best])
                bound = math.ceil(self.route.sticky_load_factor * (sum(loads) + 1) / len(replicas))
                if self.route.sticky_load_factor > 0 and chosen.outstanding + 1 > bound:
                    chosen = None  # over the bounded-load limit, as sticky routing's
        chosen = chosen or self._least_loaded(replicas)
        chosen.prefixes.add(hashes)
        return chosen

    def _sticky(self, key: str, replicas: list[_Replica]) -> _Replica:
        """The key's first replica by rendezvous hashing that is under the load bound."""
        ranked = sorted(replicas, key=lambda r: _rendezvous(key, r.endpoint.url), reverse=True)
        if self.route.sticky_load_factor <= 0 or len(ranked) == 1:
            return ranked[0]
        total = sum(r.outstanding for r in ranked) + 1  # with this request
        bound = math.ceil(self.route.sticky_load_factor * total / len(ranked))
        return next((r for r in ranked if r.outstanding + 1 <= bound), ranked[0])

    async def _candidates(self, model: str | None) -> list[_Replica]:
        deadline = time.monotonic() + self.endpoint_wait_s
        while True:
            found = [r for r in self._replicas.values() if model is None or r.endpoint.model == model]
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                which = f" serving model {model!r}" if model else ""
                raise LLMError(
                    f"no LLM replica{which} is registered after waiting {self.endpoint_wait_s:.0f} s; "
                    "check that the LLM servers started (their logs are in the run directory's logs/)"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _delay(self, attempt: int, exc: _AttemptFailed, model: str | None, tried: set[str]) -> float:
        if exc.refused:
            now = time.monotonic()
            for r in self._replicas.values():
                if r.endpoint.url not in tried and r.down_until <= now and model in (None, r.endpoint.model):
                    return 0.0
        delay = self.backoff_s * 2.0**attempt * (0.5 + self._rng.random())
        if exc.kind is Failure.RATE_LIMITED:
            return delay  # its Retry-After paused the pool: the limiter holds the next attempt back
        return max(delay, exc.retry_after)

    async def _send(self, replica: _Replica, body: bytes) -> ChatReply:
        replica.outstanding += 1
        try:
            async with replica.sem or contextlib.nullcontext(), self._sockets:  # queued here, not in sockets
                return await self._post(replica, body)
        finally:
            replica.outstanding -= 1

    async def _post(self, replica: _Replica, body: bytes) -> ChatReply:
        ep, stats = replica.endpoint, replica.stats
        if replica.left:  # picked, then it left while the request waited
            raise _AttemptFailed("the replica left (its node died or is unreachable)", refused=True)
        data = b'{"model":%s,%s' % (msgspec.json.encode(ep.model), body[1:])
        stats.requests += 1
        sent = time.monotonic()
        try:
            url = ep.url.rstrip("/") + "/v1/chat/completions"
            async with self._http(replica).post(url, data=data, headers=self._headers) as resp:
                raw = await resp.read()
                status, retry_after = resp.status, _retry_after(resp.headers)
            if status == 200:
                stats.latency_s += time.monotonic() - sent
        except aiohttp.ConnectionTimeoutError:
            stats.errors += 1
            replica.down_until = time.monotonic() + self.down_s
            raise _AttemptFailed(f"no connection within {self.unreachable_s:g} s", refused=True) from None
        except asyncio.TimeoutError:
            stats.errors += 1
            raise _AttemptFailed(f"no reply within {self.request_timeout_s:g} s", kind=Failure.TIMEOUT) from None
        except aiohttp.ClientConnectorError as exc:
            stats.errors += 1
            replica.down_until = time.monotonic() + self.down_s
            raise _AttemptFailed(f"cannot connect ({exc.os_error or exc})", refused=True) from None
        except aiohttp.ClientError as exc:
            stats.errors += 1
            if replica.left:
                raise _AttemptFailed(f"the replica left (its node died or is unreachable): {exc!r}",
                                     refused=True) from None
            if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
                replica.down_until = time.monotonic() + self.down_s
                raise _AttemptFailed(f"the server dropped the request ({type(exc).__name__}: {exc}): it died "
                                     "or restarted", kind=Failure.SERVER_DIED) from None
            raise _AttemptFailed(f"{type(exc).__name__}: {exc}") from None
        return self._reply(replica, status, raw, retry_after)

    def _reply(self, replica: _Replica, status: int, raw: bytes, retry_after: float) -> ChatReply:
        url, stats = replica.endpoint.url, replica.stats
        if status == 200:
            try:
                completion = self._decoder.decode(raw)
                choice = completion.choices[0]
            except (msgspec.DecodeError, IndexError) as exc:
                stats.errors += 1
                raise _AttemptFailed(f"unreadable completion ({exc})") from None
            stats.ok += 1
            usage = completion.usage or CompletionUsage()
            stats.prompt_tokens += usage.prompt_tokens
            stats.completion_tokens += usage.completion_tokens
            return ChatReply(
                content=choice.message.content,
                tool_calls=choice.message.tool_calls or [],
                finish_reason=choice.finish_reason or "stop",
                prompt_token_ids=completion.prompt_token_ids or [],
                token_ids=choice.token_ids or [],
                usage=usage,
                endpoint=url,
                model=replica.endpoint.model,
                pool=self.pool,
            )
        stats.errors += 1
        message = _error_message(raw)
        if status in (400, 413, 422) and any(m in message.lower() for m in _CONTEXT_MARKERS):
            raise LLMError(f"{url}: HTTP {status}: {message}", kind=Failure.CONTEXT_TOO_LONG)
        if status == 429:
            stats.rate_limited += 1
            raise _AttemptFailed(f"HTTP 429: {message}", kind=Failure.RATE_LIMITED, retry_after=retry_after)
        if status in _RETRY_STATUS or status >= 500:
            raise _AttemptFailed(f"HTTP {status}: {message}", retry_after=retry_after)
        raise LLMError(f"{url} rejected the request: HTTP {status}: {message}", kind=Failure.BAD_REQUEST)

    def _http(self, replica: _Replica) -> aiohttp.ClientSession:
        """The replica's own session: at most max_connections_per_endpoint sockets (the process's
        whole budget is the ``_sockets`` semaphore), each with keepalive and a user timeout."""
        if replica.session is None or replica.session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections_per_endpoint, ttl_dns_cache=300,
                                             socket_factory=_keepalive_socket(self.unreachable_s))
            replica.session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout_s, connect=self.unreachable_s),
            )
        return replica.session

    async def close(self) -> None:
        for replica in self._replicas.values():
            if replica.session is not None:
                await replica.session.close()
                replica.session = None
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
