"""`audience serve`: the HTTP API (and the dashboard) on a database."""
from __future__ import annotations

import ipaddress
import sys

from vision.errors import DatabaseUnusable, UsageError

from . import options
from .common import open_db
from .options import positive


def add_parser(sub, name: str) -> None:
    s = options.add_command(sub, name, help="run the HTTP API", description="Run the HTTP API (OpenAPI docs at /docs).")
    s.add_argument("--db", default="sqlite:///audience.db", help="database URL (default: sqlite:///audience.db)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=positive(int), default=8000)
    s.add_argument("--min-audience", type=positive(int), default=5,
                   help="curve buckets built from fewer distinct faces are answered as suppressed (default 5)")
    s.add_argument("--max-body-mb", type=positive(float), default=1.0,
                   help="largest request body in MB, ingest batches aside (they may be up to 64 MB; default 1)")
    s.add_argument("--live-streams-per-key", type=positive(int), default=4,
                   help="live event streams one API key may hold open at once (default 4)")
    s.add_argument("--metrics", choices=["admin", "open"], default="admin",
                   help="/metrics once keys exist: needs an admin key (default), or open to anyone who can "
                        "reach the port (serve on a private address then)")
    s.add_argument("--docs", choices=["open", "key"], default="open",
                   help="/docs, /redoc and /openapi.json once keys exist: open (default) or needing a key")


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args) -> int:
    import gc

    import uvicorn
    from sqlmodel import Session

    from service.app import create_app
    from service.auth import active_keys
    from service.guard import Limits
    from service.server import config

    engine = open_db(args.db)
    limits = Limits(max_body_bytes=int(getattr(args, "max_body_mb", 1.0) * 2 ** 20),
                    live_streams_per_key=getattr(args, "live_streams_per_key", 4),
                    metrics=getattr(args, "metrics", "admin"), docs=getattr(args, "docs", "open"))
    public = not loopback(args.host)
    try:
        app = create_app(engine, min_audience=args.min_audience, limits=limits, public=public)
    except Exception as exc:  # noqa: BLE001 - a driver error is one line
        raise DatabaseUnusable(f"database {args.db}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    if public:
        with Session(engine) as session:
            if not active_keys(session):
                raise UsageError(f"refusing to serve on {args.host} without API keys: anyone who can reach it "
                                 f"could read and write. Create one with `audience keys create --db {args.db} "
                                 "--name NAME --scope admin`, or serve on 127.0.0.1")
    # everything loaded so far lives as long as the process: keep it out of the collector's scans, which
    # otherwise stall a 7,200-row curve query 40-80 ms now and then (measured: p95 103 -> 22 ms in-process)
    gc.freeze()
    print(f"serving the API at http://{args.host}:{args.port}/api/v1 (docs: /docs), database {args.db}",
          file=sys.stderr)
    uvicorn.Server(config(app, args.host, args.port, log_level="warning")).run()
    return 0
