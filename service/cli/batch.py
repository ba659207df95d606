"""`audience batch MANIFEST`: a season of recordings -> the database and one Parquet file per recording
(vision.batch analyses; service.season matches or creates the contents and screenings and stores)."""
from __future__ import annotations

from pathlib import Path

from vision.errors import UsageError

from . import options
from .common import open_db
from .options import positive


def add_parser(sub, name: str) -> None:
    b = options.add_command(sub, name, help="analyse a season of recordings from a manifest into a database",
                            description="Analyse every recording of a CSV or Parquet manifest (columns path, "
                                        "content, screening; optional camera, content_offset, labels 'k=v;k=v' and "
                                        "any other column as a screening label). Contents and screenings are "
                                        "matched by name or created; each recording's statistics are stored "
                                        "through the idempotent ingest and its observations written to "
                                        "OUT/<content>__<screening>__<camera>.parquet. A rerun skips recordings "
                                        "already complete.")
    b.add_argument("manifest", type=Path, metavar="MANIFEST", help="CSV or Parquet, one row per recording")
    b.add_argument("--db", required=True, help="database URL (postgresql+psycopg://... for shared use, or sqlite:///)")
    b.add_argument("--out", required=True, type=Path, help="folder of per-recording Parquet files (created)")
    b.add_argument("--workers", type=positive(int), default=None,
                   help="local: processes (default one per core); ray: actors at most (default one per CPU)")
    options.add_analysis_options(b, name)
    options.add_engine_options(b)
    b.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")


def run(args) -> int:
    from service.season import SeasonStore, match_or_create
    from vision.batch import BatchRequest, run_batch
    from vision.manifest import read_manifest

    if args.address and args.engine != "ray":
        raise UsageError("--address needs --engine ray")
    request = BatchRequest(out=args.out, settings=options.settings_from_args(args), engine=args.engine,
                           address=args.address, workers=args.workers)
    recordings = read_manifest(args.manifest)
    engine = open_db(args.db)
    try:
        store = SeasonStore(args.db, match_or_create(engine, recordings), request.settings.min_quality)
        return run_batch(request, recordings, store, quiet=args.quiet)
    finally:
        engine.dispose()
