"""`audience`: the command line. Subcommands: analyze, batch, live, serve, keys, purge, demo, model.

Exit codes: 0 done (also when no face was found: a message says so); 1 internal error; 2 bad usage;
3 input not found; 4 input not a readable video or image; 5 folder with no images or videos;
6 partial: a video stopped decoding early (what decoded was analysed and written); 7 model file
missing or not the pinned sha256; 8 database or API refused or unreachable; 9 the audience model's extra
is missing or its content has too little data; 10 --device cuda without a CUDA provider; 11 --engine ray
without ray or its cluster; 130 interrupted.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from .labels import CLASSIFIERS, DEFAULT_MIN_QUALITY

EXIT_CODES = """exit codes:
  0  done (also when no face was found: a message says so)
  1  internal error
  2  bad usage
  3  input not found
  4  input is not a readable video or image
  5  folder has no images or videos
  6  partial: a video stopped decoding early; what decoded was analysed and written
  7  a model file is missing or does not match its pinned sha256
  8  the database or API refused or could not be reached (unknown screening, conflicting data, a
     database file that is not a database or is damaged)
  9  the audience model needs its optional extra (pip install 'audience-reactions[model]'),
     or the content has too little per-track data to fit it
  10 --device cuda: ONNX Runtime has no usable CUDA provider
  11 --engine ray: ray is not installed or the cluster cannot be reached
  130 interrupted"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"audience: error: {message}\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _not_negative(text):
    value = _number(text)
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text):
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="audience", description="Audience reaction analysis: faces -> expressions -> curves.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    a = sub.add_parser("analyze", help="analyse recorded videos, images or folders of them",
                       description="Analyse recorded videos, images or folders of them and write "
                                   "observations, per-second curves, a plot and a summary.",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video file, image file, folder of images/videos, webcam index or rtsp/http URL")
    a.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    a.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="observations file format")
    a.add_argument("--fps", type=_positive(float), default=None,
                   help="analysis rate in frames per second of the source (default: every frame; 2 in the "
                        "audience scene)")
    a.add_argument("--classifier", choices=CLASSIFIERS, default="fusion",
                   help="expression model: fusion (blendshapes+geometry+both CNNs, default), fusion-v1 (the "
                        "previous head: blendshapes+geometry+fer CNN), cnn (fer mini-Xception) or faceapi")
    a.add_argument("--bucket", type=_positive(float), default=1.0, help="curve bucket in seconds (default 1)")
    a.add_argument("--content-offset", type=_number, default=None,
                   help="seconds between recording start and content start (curves use content time; "
                        "default: the screening's offset with --db/--api, else 0)")
    a.add_argument("--scene", choices=("auto", "single", "audience"), default="auto",
                   help="single: faces near the camera (MediaPipe's detector); audience: a wide shot of many "
                        "small faces (MTCNN every --detect-every seconds, then each face followed by crop); "
                        "auto (default): audience when the first frame shows 3 or more faces or a face under "
                        "12%% of the frame height")
    a.add_argument("--detect-every", type=_positive(float), default=2.0,
                   help="audience scene: seconds between full-frame face detections (default 2)")
    a.add_argument("--detector", choices=("centerface+mtcnn", "centerface", "mtcnn"), default="centerface+mtcnn",
                   help="audience scene: the face detector: centerface+mtcnn (default: both, one box per face), "
                        "centerface (finds more small, blurred and turned faces in real crowds) or mtcnn (the "
                        "earlier one)")
    a.add_argument("--seat-map", type=Path, default=None,
                   help="JSON seat map: seats (ids anchored to them) and excluded opt-out regions, which are "
                        "blacked out before any model sees the frame")
    a.add_argument("--seat-empty-after", type=_positive(float), default=10.0,
                   help="audience scene / seat map: seconds a seat must stay empty before its next face "
                        "counts as a new viewer (default 10)")
    a.add_argument("--max-faces", type=_positive(int), default=None,
                   help="faces per frame at most (default 8 in the single scene, 500 in the audience scene)")
    a.add_argument("--max-lost", type=_positive(float), default=1.0,
                   help="seconds a face may be unseen before its track ends (default 1)")
    a.add_argument("--confirm-hits", type=_positive(int), default=2,
                   help="a new track is confirmed (gets an id, is written) once seen in this many analysed "
                        "frames within --confirm-within seconds (default 2; 1: at once)")
    a.add_argument("--confirm-within", type=_positive(float), default=1.0,
                   help="seconds within which a new track must reach --confirm-hits (default 1)")
    a.add_argument("--min-quality", type=_fraction, default=DEFAULT_MIN_QUALITY,
                   help=f"curves count a face's expression only from this face quality up (0-1, default "
                        f"{DEFAULT_MIN_QUALITY:g}); faces present count in n_present whatever their quality")
    _add_reaction_options(a)
    a.add_argument("--workers", type=_positive(int), default=None,
                   help="processes (default: one per core, at most one per input)")
    _add_scale_options(a)
    a.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    a.add_argument("--db", default=None, help="also store the statistics in this database (sqlite:///file.db or "
                                               "postgresql://...); needs --screening")
    a.add_argument("--api", default=None, help="also send the statistics to a running service (http://host:port); "
                                                "needs --screening")
    a.add_argument("--content", type=_positive(int), default=None, help="content id (checked against the screening)")
    a.add_argument("--screening", type=_positive(int), default=None, help="screening id to store the statistics under")
    a.add_argument("--api-key", default=None, help="API key for --api (default: $AUDIENCE_API_KEY)")

    lv = sub.add_parser("live", help="analyse a camera, stream or paced file in real time into a screening",
                        description="Analyse one camera (index), stream URL (rtsp://, http://) or file in real time "
                                    "and store its per-second statistics in a screening, live. Results go to a "
                                    "durable spool file first: an API or database outage loses nothing, and a "
                                    "restart with the same spool sends what is left. A camera that drops is "
                                    "reopened with backoff and the stretch is recorded as a gap. SIGINT/SIGTERM "
                                    "finish the second in progress, flush and exit 0. Prints a JSON summary.",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    lv.add_argument("--source", required=True, help="camera index (0), stream URL, or video file")
    lv.add_argument("--screening", type=_positive(int), required=True, help="screening id to store under")
    lv.add_argument("--content", type=_positive(int), default=None, help="content id (checked against the screening)")
    target = lv.add_mutually_exclusive_group(required=True)
    target.add_argument("--api", help="URL of a running service (audience serve)")
    lv.add_argument("--api-key", default=None, help="API key with the ingest scope (default: $AUDIENCE_API_KEY)")
    target.add_argument("--db", help="database URL to write to directly")
    lv.add_argument("--camera", default=None, help="name of this camera in the screening (default: from the source)")
    lv.add_argument("--fps", type=_positive(float), default=2.0,
                    help="analysis rate, frames per second (default 2); newer frames replace ones not yet analysed")
    lv.add_argument("--realtime", action="store_true", help="pace a FILE at its own frame rate, like a camera")
    lv.add_argument("--spool", type=Path, default=None,
                    help="spool file (default ./audience-live-s<screening>-<camera>.spool.db)")
    lv.add_argument("--classifier", choices=CLASSIFIERS, default="fusion")
    lv.add_argument("--scene", choices=["single", "audience", "auto"], default="auto")
    lv.add_argument("--seat-map", default=None, help="JSON seat map (seats and opt-out regions)")
    lv.add_argument("--min-quality", type=_fraction, default=DEFAULT_MIN_QUALITY,
                    help=f"expressions count from this face quality up (0-1, default {DEFAULT_MIN_QUALITY:g})")
    _add_reaction_options(lv)
    lv.add_argument("--metrics-host", default="127.0.0.1")
    lv.add_argument("--metrics-port", type=int, default=9108, help="/metrics and /healthz port (0: any free port; "
                                                                    "-1: none)")
    lv.add_argument("--duration", type=_positive(float), default=None, help="stop after this many seconds")
    lv.add_argument("--flush-timeout", type=_number, default=10.0,
                    help="seconds to keep sending the backlog at the end (default 10)")
    lv.add_argument("--out", type=Path, default=None, help="also write the analysed observations here (Parquet)")
    _add_device_option(lv)

    b = sub.add_parser("batch", help="analyse a season of recordings from a manifest into a database",
                       description="Analyse every recording of a CSV or Parquet manifest (columns path, content, "
                                   "screening; optional camera, content_offset, labels 'k=v;k=v' and any other "
                                   "column as a screening label). Contents and screenings are matched by name or "
                                   "created; each recording's statistics are stored through the idempotent "
                                   "ingest and its observations written to OUT/<content>__<screening>__<camera>"
                                   ".parquet. A rerun skips recordings already complete.",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("manifest", type=Path, metavar="MANIFEST", help="CSV or Parquet, one row per recording")
    b.add_argument("--db", required=True, help="database URL (postgresql+psycopg://... for shared use, or sqlite:///)")
    b.add_argument("--out", required=True, type=Path, help="folder of per-recording Parquet files (created)")
    b.add_argument("--workers", type=_positive(int), default=None,
                   help="local: processes (default one per core); ray: actors at most (default one per CPU)")
    b.add_argument("--fps", type=_positive(float), default=None,
                   help="analysis rate (default: every frame; 2 in the audience scene)")
    b.add_argument("--classifier", choices=CLASSIFIERS, default="fusion")
    b.add_argument("--scene", choices=("auto", "single", "audience"), default="auto")
    b.add_argument("--detect-every", type=_positive(float), default=2.0)
    b.add_argument("--max-faces", type=_positive(int), default=None)
    b.add_argument("--max-lost", type=_positive(float), default=1.0)
    _add_reaction_options(b)
    _add_scale_options(b)
    b.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")

    d = sub.add_parser("demo", help="analyse the bundled sample into a demo database and serve it",
                       description="Analyse the bundled sample video into a fresh SQLite database, then serve "
                                   "the API on it and print the URLs to open.",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    d.add_argument("--port", type=_positive(int), default=8000)
    d.add_argument("--no-serve", action="store_true", help="stop after the analysis (for scripts and tests)")

    s = sub.add_parser("serve", help="run the HTTP API", description="Run the HTTP API (OpenAPI docs at /docs).",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--db", default="sqlite:///audience.db", help="database URL (default: sqlite:///audience.db)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_positive(int), default=8000)
    s.add_argument("--min-audience", type=_positive(int), default=5,
                   help="curve buckets built from fewer distinct faces are answered as suppressed (default 5)")
    s.add_argument("--max-body-mb", type=_positive(float), default=1.0,
                   help="largest request body in MB, ingest batches aside (they may be up to 64 MB; default 1)")
    s.add_argument("--live-streams-per-key", type=_positive(int), default=4,
                   help="live event streams one API key may hold open at once (default 4)")
    s.add_argument("--metrics", choices=["admin", "open"], default="admin",
                   help="/metrics once keys exist: needs an admin key (default), or open to anyone who can "
                        "reach the port (serve on a private address then)")
    s.add_argument("--docs", choices=["open", "key"], default="open",
                   help="/docs, /redoc and /openapi.json once keys exist: open (default) or needing a key")

    pg = sub.add_parser("purge", help="delete screenings (and everything derived) older than some days",
                        description="Retention: delete every screening that started (or, without a start "
                                    "time, was created) more than DAYS ago, with all statistics derived from it, "
                                    "then contents older than that with no screening left.",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    pg.add_argument("--older-than", type=_positive(float), required=True, metavar="DAYS")
    pg.add_argument("--db", default="sqlite:///audience.db", help="database URL (default: sqlite:///audience.db)")
    pg.add_argument("--dry-run", action="store_true", help="only say what would be deleted")

    k = sub.add_parser("keys", help="create, list or revoke API keys",
                       description="API keys for the service: scopes read (curves and everything readable), "
                                   "ingest (store statistics, report live sources) and admin (everything, "
                                   "including per-track data); optionally limited to some contents. The key is "
                                   "printed once at creation; the database keeps only its hash. Once a key "
                                   "has been created, every API request needs one, also after every key is "
                                   "revoked, until `keys reopen`.",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    k.add_argument("--db", default="sqlite:///audience.db", help="database URL (default: sqlite:///audience.db)")
    ks = k.add_subparsers(dest="action", required=True, parser_class=_Parser)
    kc = ks.add_parser("create", help="create a key and print it (once)")
    kc.add_argument("--name", required=True, help="who or what uses it (e.g. 'venue 12 box')")
    kc.add_argument("--scope", action="append", required=True, choices=["read", "ingest", "admin"],
                    help="repeat for several")
    kc.add_argument("--content", action="append", type=_positive(int), default=None,
                    help="limit the key to this content id (repeat for several; default: all contents)")
    ks.add_parser("list", help="list keys (never the keys themselves)")
    kr = ks.add_parser("revoke", help="revoke a key by its id")
    kr.add_argument("id", type=_positive(int))
    ko = ks.add_parser("reopen", help="let the service run without keys again (loopback only; recorded)",
                       description="Revoking every key leaves a closed service, never an open one. This is "
                                   "the explicit decision to serve without keys again, on loopback only; the "
                                   "time and the reason are recorded in the database.")
    ko.add_argument("--reason", required=True, help="why (recorded)")

    mo = sub.add_parser("model", help="the audience model: fit it on a content's per-track statistics",
                        description="Fit the audience model of a content (a factorised VAE of viewers x seconds x "
                                    "metrics, beside a linear factorisation baseline) and store its aggregate "
                                    "products: imputed curve, reaction types, time factors; per-viewer latents "
                                    "for admin keys only. Needs the optional extra .[model] (JAX, optax).",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ms = mo.add_subparsers(dest="action", required=True, parser_class=_Parser)
    mf = ms.add_parser("fit", help="fit a content's model and store its products")
    mf.add_argument("--db", default="sqlite:///audience.db", help="database URL (default: sqlite:///audience.db)")
    mf.add_argument("--content", type=_positive(int), required=True, help="the content id")
    mf.add_argument("--epochs", type=_positive(int), default=60, help="at most this many passes (default 60)")
    mf.add_argument("--latent", type=_positive(int), default=20, help="latent size (default 20)")
    mf.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .quiet import native_stderr_to_devnull

    with native_stderr_to_devnull():
        try:
            if args.command == "analyze":
                return _analyze(args)
            if args.command == "batch":
                return _batch(args)
            if args.command == "serve":
                return _serve(args)
            if args.command == "demo":
                return _demo(args)
            if args.command == "live":
                return _live(args)
            if args.command == "keys":
                return _keys(args)
            if args.command == "purge":
                return _purge(args)
            if args.command == "model":
                return _model(args)
        except KeyboardInterrupt:
            print("audience: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - every failure leaves as one line
            from .errors import AudienceError

            if isinstance(exc, AudienceError):
                print(f"audience: error: {exc}", file=sys.stderr)
                return exc.exit_code
            if os.environ.get("AUDIENCE_DEBUG"):
                raise
            print(f"audience: internal error: {exc.__class__.__name__}: {exc} "
                  f"(set AUDIENCE_DEBUG=1 for a traceback)", file=sys.stderr)
            return 1
    return 2


def _add_reaction_options(parser) -> None:
    """Per-viewer smoothing and baselines (vision.reactions), the same for analyze and live."""
    from .reactions import ReactionOptions

    defaults = ReactionOptions()
    parser.add_argument("--smooth", type=_not_negative, default=defaults.smooth_s, metavar="SECONDS",
                        help="time constant of each viewer's smoothing filter in seconds (default "
                             f"{defaults.smooth_s:g}; 0: raw readings)")
    parser.add_argument("--baseline", type=_positive(float), default=defaults.baseline_s, metavar="SECONDS",
                        help="each viewer's opening window in seconds: its median is their resting baseline, "
                             f"and <value>_delta columns read against it (default {defaults.baseline_s:g})")


def _add_device_option(parser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                        help="where the ONNX models run: cpu (default), cuda (an error without a CUDA provider) "
                             "or auto (cuda when there is one, else cpu with a notice)")


def _add_scale_options(parser) -> None:
    _add_device_option(parser)
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this machine's processes (default); ray: a Ray cluster (pip install "
                             "'.[ray]'), long-lived workers that load the models once, jobs retried on worker loss")
    parser.add_argument("--address", default=None,
                        help="--engine ray: the cluster's address (host:port or 'auto'); default: start one here")


def _device(args) -> str:
    """--device made concrete once per run; the fallback notice is one line."""
    from .onnx import resolve_device

    device, notice = resolve_device(args.device)
    if notice:
        print(f"audience: notice: {notice}", file=sys.stderr)
    return device


def _batch(args) -> int:
    from .batch import BatchRequest, run_batch

    if args.address and args.engine != "ray":
        print("audience: error: --address needs --engine ray", file=sys.stderr)
        return 2
    return run_batch(BatchRequest(
        manifest=args.manifest, db=args.db, out=args.out, engine=args.engine, address=args.address,
        workers=args.workers, fps=args.fps, classifier=args.classifier, scene=args.scene,
        detect_every_s=args.detect_every, max_faces=args.max_faces, max_lost_s=args.max_lost,
        device=_device(args), reactions=_reaction_options(args)), quiet=args.quiet)


def _reaction_options(args):
    from .reactions import ReactionOptions

    return ReactionOptions(smooth_s=args.smooth, baseline_s=args.baseline)


def _api_key(args) -> str | None:
    """--api-key, or $AUDIENCE_API_KEY; None: an open service."""
    return getattr(args, "api_key", None) or os.environ.get("AUDIENCE_API_KEY") or None


def _open_db(url: str):
    from service.db import make_engine, migrate

    from .errors import DatabaseUnusable

    try:
        engine = make_engine(url)
        migrate(engine)
    except Exception as exc:  # noqa: BLE001 - a driver error is one line
        raise DatabaseUnusable(f"database {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    return engine


def _purge(args) -> int:
    from sqlmodel import Session

    from service import store

    with Session(_open_db(args.db)) as session:
        gone = store.purge(session, args.older_than, args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(gone['screenings'])} screening(s) older than {args.older_than:g} days"
          f"{' (' + ', '.join(map(str, gone['screenings'])) + ')' if gone['screenings'] else ''} and "
          f"{len(gone['contents'])} content(s) left without screenings"
          f"{' (' + ', '.join(map(str, gone['contents'])) + ')' if gone['contents'] else ''}", file=sys.stderr)
    return 0


def _model(args) -> int:
    from sqlmodel import Session

    from service import reaction_store as rs
    from service.models import Content
    from service.uplink.client import PublishError

    from .errors import ModelExtraError

    engine = _open_db(args.db)
    with Session(engine) as session:
        if session.get(Content, args.content) is None:
            raise PublishError(f"content {args.content} not found in {args.db}") from None
        try:
            from vision.reaction_model.vae import _jax

            _jax()
        except ImportError as exc:
            raise ModelExtraError(str(exc)) from None
        fit_id = rs.create_fit(session, args.content, {"max_epochs": args.epochs, "latent": args.latent,
                                                       "seed": args.seed})
        try:
            summary = rs.run_fit(session, fit_id)
        except rs.NoData as exc:
            raise ModelExtraError(str(exc)) from None
        seconds = rs.fit(session, fit_id)["seconds"]
    errors = ", ".join(f"{k} {v:.4f}" for k, v in summary["validation_rmse"].items())
    print(f"model {fit_id} of content {args.content}: {summary['viewers']} viewers x {summary['seconds']} s x "
          f"{len(summary['metrics'])} metrics ({summary['seen_fraction']:.0%} seen), {summary['epochs']} epochs, "
          f"{summary['types']} reaction type(s), {seconds:.1f} s; held-out RMSE: {errors}", file=sys.stderr)
    return 0


def _keys(args) -> int:
    from sqlmodel import Session

    from service import auth

    from .errors import AudienceError

    with Session(_open_db(args.db)) as session:
        if args.action == "create":
            key, secret = auth.create_key(session, args.name, args.scope, args.content)
            print(secret)
            print(f"created key {key.id} ({key.name}: {', '.join(key.scopes)}"
                  f"{'; contents ' + ', '.join(map(str, key.contents)) if key.contents else ''}); "
                  "it is shown only now", file=sys.stderr)
        elif args.action == "list":
            print("id\tname\tprefix\tscopes\tcontents\tcreated\trevoked")
            for key in auth.list_keys(session):
                print(f"{key.id}\t{key.name}\t{key.prefix}…\t{','.join(key.scopes)}\t"
                      f"{','.join(map(str, key.contents)) if key.contents else 'all'}\t"
                      f"{key.created_at:%Y-%m-%d %H:%M}\t{key.revoked_at or ''}")
        elif args.action == "reopen":
            try:
                auth.reopen(session, args.reason)
            except ValueError as exc:
                raise AudienceError(f"not reopened: {exc}") from None
            print(f"the service runs without API keys again, on loopback only (recorded: {args.reason})",
                  file=sys.stderr)
        else:
            key = auth.revoke_key(session, args.id)
            if key is None:
                raise AudienceError(f"no key {args.id} in {args.db}")
            print(f"key {key.id} ({key.name}) revoked", file=sys.stderr)
    return 0


def _live(args) -> int:
    from service.live import LiveRequest, run_live, summary_json

    from .pipeline import Settings

    settings = Settings(fps=args.fps, classifier=args.classifier, scene=args.scene, seat_map=args.seat_map,
                        device=_device(args))
    summary = run_live(LiveRequest(
        source=args.source, screening=args.screening, content=args.content, api=args.api, db=args.db,
        api_key=_api_key(args), camera=args.camera, realtime=args.realtime, spool=args.spool, settings=settings,
        metrics_host=args.metrics_host, metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        duration_s=args.duration, flush_timeout_s=args.flush_timeout, out=args.out, min_quality=args.min_quality,
        reactions=_reaction_options(args)), stderr=sys.stderr)
    print(summary_json(summary))
    return 0


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(args) -> int:
    import uvicorn

    from service.app import create_app
    from service.guard import Limits
    from service.server import config

    from .errors import DatabaseUnusable

    engine = _open_db(args.db)
    limits = Limits(max_body_bytes=int(getattr(args, "max_body_mb", 1.0) * 2 ** 20),
                    live_streams_per_key=getattr(args, "live_streams_per_key", 4),
                    metrics=getattr(args, "metrics", "admin"), docs=getattr(args, "docs", "open"))
    public = not _loopback(args.host)
    try:
        app = create_app(engine, min_audience=args.min_audience, limits=limits, public=public)
    except Exception as exc:  # noqa: BLE001 - a driver error is one line
        raise DatabaseUnusable(f"database {args.db}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    if public:
        from sqlmodel import Session

        from service.auth import active_keys

        with Session(engine) as session:
            if not active_keys(session):
                print(f"audience: error: refusing to serve on {args.host} without API keys: anyone who can reach "
                      f"it could read and write. Create one with `audience keys create --db {args.db} --name NAME "
                      f"--scope admin`, or serve on 127.0.0.1", file=sys.stderr)
                return 2
    # everything loaded so far lives as long as the process: keep it out of the collector's scans, which
    # otherwise stall a 7,200-row curve query 40-80 ms now and then (measured: p95 103 -> 22 ms in-process)
    gc.freeze()
    print(f"serving the API at http://{args.host}:{args.port}/api/v1 (docs: /docs), database {args.db}",
          file=sys.stderr)
    uvicorn.Server(config(app, args.host, args.port, log_level="warning")).run()
    return 0


def _demo(args) -> int:
    from sqlmodel import Session

    from service.db import make_engine, migrate
    from service.models import Content, Screening

    from .analyze import AnalyzeRequest, run_analyze

    sample = Path(__file__).resolve().parent.parent / "fixtures" / "two_faces.mp4"
    args.out.mkdir(parents=True, exist_ok=True)
    db_file = args.out / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    db = f"sqlite:///{db_file}"
    engine = make_engine(db)
    migrate(engine)
    with Session(engine) as session:
        content = Content(title="Demo: two viewers (bundled sample)", duration_s=5.0)
        session.add(content)
        session.commit()
        screening = Screening(content_id=content.id, venue="bundled sample", labels={"demo": "yes"})
        session.add(screening)
        session.commit()
        content_id, screening_id = content.id, screening.id
    engine.dispose()
    code = run_analyze(AnalyzeRequest(inputs=[str(sample)], out=args.out, db=db, screening=screening_id))
    if code != 0:
        return code
    _demo_season(db)
    if args.no_serve:
        return code
    base = f"http://127.0.0.1:{args.port}"
    print(f"demo service: dashboard {base}/ , curve {base}/api/v1/contents/{content_id}/curves?metrics=p_happiness,"
          f"smile,valence (API docs: {base}/docs). The sample has 2-3 faces, so the demo serves with a minimum "
          f"audience of 1 (the default is 5). Ctrl-C to stop", file=sys.stderr)
    return _serve(argparse.Namespace(db=db, host="127.0.0.1", port=args.port, min_audience=1))


def _demo_season(db: str) -> None:
    """A simulated season beside the sample (3 screenings of a 10-minute content, 60-120 viewers each, two
    cuts) so that compare, norms, moments and the audience model have something to show; the model is fitted
    when its extra is installed."""
    import importlib.util
    import time

    from sqlmodel import Session

    from service import reaction_store as rs
    from service.db import make_engine

    start = time.perf_counter()
    engine = make_engine(db)
    with Session(engine) as session:
        content_id = rs.load_simulated_season(session)
        print(f"demo: simulated season loaded as content {content_id} ({time.perf_counter() - start:.0f} s)",
              file=sys.stderr)
        if importlib.util.find_spec("jax") is None:
            print("demo: the audience model is not fitted (pip install 'audience-reactions[model]', then "
                  f"audience model fit --db {db} --content {content_id})", file=sys.stderr)
        else:
            summary = rs.run_fit(session, rs.create_fit(session, content_id, {"max_epochs": 12, "latent": 8}))
            print(f"demo: audience model fitted ({summary['viewers']} viewers, {summary['types']} reaction types, "
                  f"{time.perf_counter() - start:.0f} s in all)", file=sys.stderr)
    engine.dispose()


def _analyze(args) -> int:
    from .analyze import AnalyzeRequest, run_analyze

    if (args.db or args.api) and args.screening is None:
        print("audience: error: --db and --api need --screening ID", file=sys.stderr)
        return 2
    offset = args.content_offset
    if args.screening is not None and (args.db or args.api):
        from service.uplink.client import connect

        found = connect(args.db, args.api, _api_key(args)).screening_offset(args.screening, args.content)
        offset = found if offset is None else offset

    request = AnalyzeRequest(inputs=args.inputs, out=args.out, fmt=args.format, fps=args.fps,
                             classifier=args.classifier, bucket=args.bucket, content_offset=offset or 0.0,
                             max_faces=args.max_faces,
                             max_lost_s=args.max_lost, workers=args.workers, scene=args.scene,
                             detect_every_s=args.detect_every, detector=args.detector,
                             seat_map=str(args.seat_map) if args.seat_map else None,
                             seat_empty_after_s=args.seat_empty_after, db=args.db, api=args.api, api_key=_api_key(args),
                             screening=args.screening, confirm_hits=args.confirm_hits,
                             confirm_within_s=args.confirm_within, min_quality=args.min_quality,
                             reactions=_reaction_options(args), device=_device(args), engine=args.engine,
                             address=args.address)
    return run_analyze(request, quiet=args.quiet)


if __name__ == "__main__":
    raise SystemExit(main())
