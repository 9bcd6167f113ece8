"""``slurmgen view RUN_DIR [--port N] [--static OUT_DIR]``."""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from pathlib import Path

from slurmgen.errors import SlurmgenError
from slurmgen.view import static
from slurmgen.view.index import Index
from slurmgen.view.query import Filter


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slurmgen view", description="Read a run's records in the browser "
                                "(a finished or a live run). The index it needs is kept in RUN_DIR/state/view-index.")
    p.add_argument("run_dir", type=Path, help="the run directory (run.dir)")
    p.add_argument("--port", type=int, default=8765, help="port on localhost (0: a free one); default 8765")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on; default 127.0.0.1 (this machine only)")
    p.add_argument("--static", type=Path, metavar="OUT_DIR",
                   help="write a copy to open from the file system instead of serving: index.html + data.js")
    p.add_argument("--limit", type=int, default=2000, help="--static: records copied at most (default 2000)")
    p.add_argument("--where", default="", metavar="FILTER",
                   help="--static: copy only the records matching this filter, e.g. 'status=failed&role=user'")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        where = Filter.parse(dict(urllib.parse.parse_qsl(args.where)))
        t0 = time.perf_counter()
        index = Index(args.run_dir)
        added = index.refresh()
    except SlurmgenError as exc:
        print(f"slurmgen view: error: {exc}", file=sys.stderr)
        return 2
    print(f"slurmgen view: {index.meta.n} records ({added} newly indexed) in {time.perf_counter() - t0:.2f} s; "
          f"index {index.dir}", flush=True)
    if args.static:
        copied, matched = static.write(index, args.static, where, args.limit)
        print(f"slurmgen view: wrote {args.static / 'index.html'}: {copied} of {matched} matching records", flush=True)
        return 0
    return serve(index, args.host, args.port)


def serve(index: Index, host: str, port: int) -> int:
    from slurmgen.view.server import make_server

    try:
        server = make_server(index, host, port)
    except OSError as exc:
        print(f"slurmgen view: error: cannot serve on {host}:{port}: {exc}; choose another --port", file=sys.stderr)
        return 2
    print(f"slurmgen view: http://{host}:{server.server_address[1]}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
