"""`audience analyze`: recorded videos, images or folders -> observations, curves, plot, summary, report;
with --db / --api the statistics also go to a screening (service.uplink.client)."""
from __future__ import annotations

from pathlib import Path

from service.uplink.client import ApiClient, DbClient, connect
from vision.errors import UsageError
from vision.settings import AnalyzeRequest
from vision.stats import track_seconds

from . import options
from .common import api_key
from .options import positive


def add_parser(sub, name: str) -> None:
    a = options.add_command(sub, name, help="analyse recorded videos, images or folders of them",
                            description="Analyse recorded videos, images or folders of them and write "
                                        "observations, per-second curves, a plot and a summary.")
    a.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video file, image file, folder of images/videos, webcam index or rtsp/http URL")
    a.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    a.add_argument("--format", choices=("parquet", "csv"), default=options.default_of(AnalyzeRequest, "fmt"),
                   help="observations file format")
    bucket = options.default_of(AnalyzeRequest, "bucket")
    a.add_argument("--bucket", type=positive(float), default=bucket,
                   help=f"curve bucket in seconds (default {bucket:g})")
    a.add_argument("--content-offset", type=options.number, default=None,
                   help="seconds between recording start and content start (curves use content time; "
                        "default: the screening's offset with --db/--api, else 0)")
    options.add_analysis_options(a, name)
    a.add_argument("--workers", type=positive(int), default=None,
                   help="processes (default: one per core, at most one per input)")
    options.add_engine_options(a)
    a.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    a.add_argument("--db", default=None, help="also store the statistics in this database (sqlite:///file.db or "
                                               "postgresql://...); needs --screening")
    a.add_argument("--api", default=None, help="also send the statistics to a running service (http://host:port); "
                                                "needs --screening")
    a.add_argument("--content", type=positive(int), default=None, help="content id (checked against the screening)")
    a.add_argument("--screening", type=positive(int), default=None, help="screening id to store the statistics under")
    a.add_argument("--api-key", default=None, help="API key for --api (default: $AUDIENCE_API_KEY)")


class StatsPublisher:
    """vision.analyze's `Publisher`: each source's per-track-second statistics, stored in a database or sent to
    a running service once the run's files are written (both idempotent)."""

    def __init__(self, client: ApiClient | DbClient, screening: int, content_offset: float, min_quality: float):
        self.client, self.screening = client, screening
        self.content_offset, self.min_quality = content_offset, min_quality
        self.batches: list[tuple[str, dict]] = []

    def add(self, source: str, cols: dict) -> None:
        self.batches.append((source, track_seconds(cols, self.content_offset, self.min_quality)))

    def publish(self) -> tuple[dict, str]:
        inserted, unchanged = self.client.publish(self.screening, self.batches)
        return ({"to": self.client.target, "screening": self.screening, "inserted": inserted, "unchanged": unchanged},
                f"stored {inserted} track-seconds in screening {self.screening} ({unchanged} already there)")


def run(args) -> int:
    from vision.analyze import run_analyze  # the engine, loaded only when it runs (`--help` stays fast)

    if (args.db or args.api) and args.screening is None:
        raise UsageError("--db and --api need --screening ID")
    offset = args.content_offset
    client = connect(args.db, args.api, api_key(args)) if args.screening is not None and (args.db or args.api) else None
    if client is not None:
        found = client.screening_offset(args.screening, args.content)
        offset = found if offset is None else offset
    settings = options.settings_from_args(args)
    publisher = (StatsPublisher(client, args.screening, offset or 0.0, settings.min_quality)
                 if client is not None else None)
    request = AnalyzeRequest(inputs=args.inputs, out=args.out, settings=settings, fmt=args.format,
                             bucket=args.bucket, content_offset=offset or 0.0, workers=args.workers,
                             engine=args.engine, address=args.address)
    return run_analyze(request, quiet=args.quiet, publisher=publisher)
