"""Before the first task: a ``max_tokens`` no server of the run accepts is refused, not tried.

vLLM answers ``max_tokens`` above its ``max_model_len`` with HTTP 400 on every request
(``max_tokens=10240 cannot be greater than max_model_len=2048``): each task would fail with
``bad_request``. Once the servers are up, a peer asks each replica's ``/v1/models`` for the
``max_model_len`` of the model it serves (vLLM and SGLang list it; a server that does not is
not judged) and compares every ``max_tokens`` of the workflow's config (its ``Sampling``
fields) with the largest of them: a value above every replica's length cannot succeed on
any pool. The peer then writes the problems to ``RUN/state/refused`` and issues nothing; the
driver stops the run with exit code 2 (slurmgen.driver).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp
import msgspec

from slurmgen.llm.types import Endpoint, Sampling


class _Model(msgspec.Struct):
    id: str
    max_model_len: int | None = None


class _Models(msgspec.Struct):
    data: list[_Model] = []


def max_tokens_fields(conf: Any, prefix: str = "workflow") -> dict[str, int]:
    """``workflow.<field>.max_tokens`` -> value, for every Sampling in the workflow's config."""
    out: dict[str, int] = {}
    if not dataclasses.is_dataclass(conf):
        return out
    for f in dataclasses.fields(conf):
        value = getattr(conf, f.name)
        if isinstance(value, Sampling):
            out[f"{prefix}.{f.name}.max_tokens"] = value.max_tokens
        elif dataclasses.is_dataclass(value):
            out.update(max_tokens_fields(value, f"{prefix}.{f.name}"))
    return out


async def model_length(http: aiohttp.ClientSession, ep: Endpoint) -> int | None:
    """The ``max_model_len`` a replica reports for its model (None: not reported, or no answer)."""
    try:
        async with http.get(ep.url.rstrip("/") + "/v1/models") as resp:
            raw = await resp.read() if resp.status == 200 else b""
        listed = msgspec.json.decode(raw, type=_Models).data if raw else []
    except (aiohttp.ClientError, asyncio.TimeoutError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return next((m.max_model_len for m in listed if m.id == ep.model), None)


async def lengths(endpoints: list[Endpoint], headers: dict[str, str] | None = None,
                  timeout_s: float = 10.0) -> dict[str, int]:
    """Replica URL -> max_model_len, for the replicas that report one."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s), headers=headers) as http:
        found = await asyncio.gather(*(model_length(http, ep) for ep in endpoints))
    return {ep.url: n for ep, n in zip(endpoints, found, strict=True) if n}


def problems(fields: dict[str, int], lengths_by_url: dict[str, int]) -> list[str]:
    """A max_tokens above every replica's max_model_len (none reported = nothing to judge)."""
    if not lengths_by_url:
        return []
    longest = max(lengths_by_url.values())
    where = ", ".join(f"{url} {n}" for url, n in sorted(lengths_by_url.items()))
    return [f"{key}={value} is above the servers' max_model_len ({where}): every such request would be "
            f"refused with HTTP 400; lower it (e.g. {key}={longest // 2}) or serve the model with a longer "
            "--max-model-len" for key, value in sorted(fields.items()) if value > longest]
