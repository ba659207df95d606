"""`audience live`: one camera, stream or paced file analysed in real time into a running screening
(service.live.run_live; its spool and sender are the service's uplink)."""
from __future__ import annotations

from pathlib import Path

from . import options
from .common import api_key
from .options import positive


def add_parser(sub, name: str) -> None:
    lv = options.add_command(
        sub, name, help="analyse a camera, stream or paced file in real time into a screening",
        description="Analyse one camera (index), stream URL (rtsp://, http://) or file in real time and store its "
                    "per-second statistics in a screening, live. Results go to a durable spool file first: an API "
                    "or database outage loses nothing, and a restart with the same spool sends what is left. A "
                    "camera that drops is reopened with backoff and the stretch is recorded as a gap. "
                    "SIGINT/SIGTERM finish the second in progress, flush and exit 0. Prints a JSON summary.")
    lv.add_argument("--source", required=True, help="camera index (0), stream URL, or video file")
    lv.add_argument("--screening", type=positive(int), required=True, help="screening id to store under")
    lv.add_argument("--content", type=positive(int), default=None, help="content id (checked against the screening)")
    target = lv.add_mutually_exclusive_group(required=True)
    target.add_argument("--api", help="URL of a running service (audience serve)")
    lv.add_argument("--api-key", default=None, help="API key with the ingest scope (default: $AUDIENCE_API_KEY)")
    target.add_argument("--db", help="database URL to write to directly")
    lv.add_argument("--camera", default=None, help="name of this camera in the screening (default: from the source)")
    lv.add_argument("--realtime", action="store_true", help="pace a FILE at its own frame rate, like a camera")
    lv.add_argument("--spool", type=Path, default=None,
                    help="spool file (default ./audience-live-s<screening>-<camera>.spool.db)")
    options.add_analysis_options(lv, name)
    lv.add_argument("--metrics-host", default="127.0.0.1")
    lv.add_argument("--metrics-port", type=int, default=9108, help="/metrics and /healthz port (0: any free port; "
                                                                    "-1: none)")
    lv.add_argument("--duration", type=positive(float), default=None, help="stop after this many seconds")
    lv.add_argument("--flush-timeout", type=options.number, default=10.0,
                    help="seconds to keep sending the backlog at the end (default 10)")
    lv.add_argument("--out", type=Path, default=None, help="also write the analysed observations here (Parquet)")


def run(args) -> int:
    import sys

    from service.live import LiveRequest, run_live, summary_json

    summary = run_live(LiveRequest(
        source=args.source, screening=args.screening, settings=options.settings_from_args(args),
        content=args.content, api=args.api, db=args.db, api_key=api_key(args), camera=args.camera, realtime=args.realtime,
        spool=args.spool, metrics_host=args.metrics_host,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port, duration_s=args.duration,
        flush_timeout_s=args.flush_timeout, out=args.out), stderr=sys.stderr)
    print(summary_json(summary))
    return 0
