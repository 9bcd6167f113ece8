"""The viewer's HTTP server (stdlib ``http.server``, localhost): the page, and a small JSON API.

``GET /api/meta`` (the run and its filter values), ``GET /api/rows?<filter>&offset=&limit=``
(a page of the list), ``GET /api/record/<n>`` (one record as written). The index is
extended at most once a second, so a live run's new records appear on the next request.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import msgspec

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


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, text: str) -> None:
        super().__init__(text)
        self.status = status


class Viewer:
    """The answers, one request at a time (the index is not shared between threads)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.lock = threading.Lock()
        self.refreshed = time.monotonic()

    def answer(self, path: str, query: dict[str, str]) -> tuple[bytes, str]:
        """(body, content type) for a GET of ``path``."""
        if path == "/":
            return page_html(), "text/html; charset=utf-8"
        with self.lock:
            if time.monotonic() - self.refreshed >= REFRESH_S:
                self.index.refresh()
                self.refreshed = time.monotonic()
            if path == "/api/meta":
                return msgspec.json.encode(meta_of(self.index)), "application/json"
            if path == "/api/rows":
                return msgspec.json.encode(self._rows(query)), "application/json"
            if path.startswith("/api/record/"):
                return self._record(path.rsplit("/", 1)[1]), "application/json"
        raise HttpError(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    def _rows(self, query: dict[str, str]) -> msgspec.Struct:
        try:
            f = Filter.parse(query)
            offset = max(0, int(query.get("offset") or 0))
            limit = min(MAX_LIMIT, max(1, int(query.get("limit") or 50)))
        except (SlurmgenError, ValueError) as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        return page(self.index, f, offset, limit)

    def _record(self, n: str) -> bytes:
        try:
            return self.index.read(int(n))
        except (ValueError, IndexError) as exc:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no record {n}") from exc


def handler(viewer: Viewer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            try:
                body, kind = viewer.answer(url.path, dict(urllib.parse.parse_qsl(url.query)))
                status = HTTPStatus.OK
            except HttpError as exc:
                body, kind, status = f"{exc.status.value}: {exc}".encode(), "text/plain; charset=utf-8", exc.status
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # no line per request
            pass

    return Handler


def make_server(index: Index, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), handler(Viewer(index)))
    server.daemon_threads = True
    return server
