"""`audience demo`: the bundled sample analysed into a fresh SQLite database beside a simulated season, served."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import options, serve
from .options import positive

SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "two_faces.mp4"


def add_parser(sub, name: str) -> None:
    d = options.add_command(sub, name, help="analyse the bundled sample into a demo database and serve it",
                            description="Analyse the bundled sample video into a fresh SQLite database, then serve "
                                        "the API on it and print the URLs to open.")
    d.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    d.add_argument("--port", type=positive(int), default=8000)
    d.add_argument("--no-serve", action="store_true", help="stop after the analysis (for scripts and tests)")


def run(args) -> int:
    from sqlmodel import Session

    from service.db import make_engine, migrate
    from service.models import Content, Screening
    from service.uplink.client import DbClient
    from vision.analyze import run_analyze
    from vision.settings import AnalyzeRequest, Settings

    from .analyze import StatsPublisher

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
    settings = Settings(**options.COMMAND_DEFAULTS["analyze"])  # `audience analyze`'s defaults
    code = run_analyze(AnalyzeRequest(inputs=[str(SAMPLE)], out=args.out, settings=settings),
                       publisher=StatsPublisher(DbClient(db), screening_id, 0.0, settings.min_quality))
    if code != 0:
        return code
    season(db)
    if args.no_serve:
        return code
    base = f"http://127.0.0.1:{args.port}"
    print(f"demo service: dashboard {base}/ , curve {base}/api/v1/contents/{content_id}/curves?metrics=p_happiness,"
          f"smile,valence (API docs: {base}/docs). The sample has 2-3 faces, so the demo serves with a minimum "
          f"audience of 1 (the default is 5). Ctrl-C to stop", file=sys.stderr)
    return serve.run(argparse.Namespace(db=db, host="127.0.0.1", port=args.port, min_audience=1))


def season(db: str) -> None:
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
