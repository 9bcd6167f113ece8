"""The viewer's HTTP server (aiohttp, localhost): the page, and a small JSON API over the index.

``GET /api/meta`` (the run and its filter values), ``GET /api/rows?<filter>&offset=&limit=``
(a page of the list), ``GET /api/record/<n>`` (one record as written). The index is
extended at most once a second, so a live run's new records appear on the next request.
"""

from __future__ import annotations

import time
from importlib import resources

import msgspec
from aiohttp import web

from slurmgen.errors import SlurmgenError
from slurmgen.view.fields import STATUS_NAMES
from slurmgen.view.index import Index
from slurmgen.view.query import Filter, page

REFRESH_S = 1.0
MAX_LIMIT = 500


class Meta(msgspec.Struct, kw_only=True):
    run: str
    records: int
    statuses: list[str]
    reasons: list[str]
    roles: list[str]
    pools: list[str]
    metrics: list[str]
    finished: bool  # summary.json written: the run will not grow


def page_html() -> bytes:
    return resources.files("slurmgen.view").joinpath("page.html").read_bytes()


def meta_of(index: Index) -> Meta:
    m = index.meta
    return Meta(run=index.run.root.name, records=m.n, statuses=list(STATUS_NAMES), reasons=m.reasons,
                roles=m.roles, pools=m.pools, metrics=m.metrics, finished=index.run.summary.exists())


class Viewer:
    def __init__(self, index: Index) -> None:
        self.index = index
        self.refreshed = time.monotonic()

    def _fresh(self) -> Index:
        if time.monotonic() - self.refreshed >= REFRESH_S:
            self.index.refresh()
            self.refreshed = time.monotonic()
        return self.index

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=page_html(), content_type="text/html")

    async def meta(self, request: web.Request) -> web.Response:
        return _json(meta_of(self._fresh()))

    async def rows(self, request: web.Request) -> web.Response:
        try:
            f = Filter.parse(request.query)
            offset = max(0, int(request.query.get("offset", "0") or 0))
            limit = min(MAX_LIMIT, max(1, int(request.query.get("limit", "50") or 50)))
        except (SlurmgenError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return _json(page(self._fresh(), f, offset, limit))

    async def record(self, request: web.Request) -> web.Response:
        try:
            line = self._fresh().read(int(request.match_info["n"]))
        except (ValueError, IndexError) as exc:
            raise web.HTTPNotFound(text=f"no record {request.match_info['n']}") from exc
        return web.Response(body=line, content_type="application/json")


def _json(value: msgspec.Struct) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), content_type="application/json")


def app(index: Index) -> web.Application:
    v = Viewer(index)
    application = web.Application()
    application.add_routes([web.get("/", v.page), web.get("/api/meta", v.meta), web.get("/api/rows", v.rows),
                            web.get("/api/record/{n}", v.record)])
    return application
