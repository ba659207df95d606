"""Engine and sessions. SQLite file by default; PostgreSQL by URL. Created at start-up, not import."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine, select

from .models import SCHEMA_VERSION, SchemaVersion

DEFAULT_DB = "sqlite:///audience.db"


def make_engine(url: str = DEFAULT_DB) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite://":
            Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # one writer at a time: wait up to 30 s for the lock (concurrent ingests queue instead of failing)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def migrate(engine: Engine) -> int:
    """Create what is missing, run the steps from the stored schema version up to this program's, and
    record it. Refuses a database written by a newer version."""
    from . import auth, store  # noqa: F401 - auth's table joins the metadata
    from .models import Content

    SQLModel.metadata.create_all(engine)
    _add_read_counts(engine)
    with Session(engine) as session:
        row = session.exec(select(SchemaVersion)).first()
        if row is None:
            session.add(SchemaVersion(id=1, version=SCHEMA_VERSION))
            session.commit()
            return SCHEMA_VERSION
        if row.version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema version {row.version} is newer than this program's {SCHEMA_VERSION}")
        if row.version < 2:  # version 2 added the content-wide rollup: build it from what is stored
            for content in session.exec(select(Content)).all():
                store._refresh_content(session, content.id)
        # version 3 added content_revision: create_all made it; a content without a row is at revision 0
        row.version = SCHEMA_VERSION
        session.add(row)
        session.commit()
        return SCHEMA_VERSION


def _add_read_counts(engine: Engine) -> None:
    """The read counts (n_read per track-second, k_read per second) added to a database made before them:
    every stored sample counted as read, as it was then. (Schema step for the version that adds them.)"""
    from sqlalchemy import inspect, text

    have = {t: {c["name"] for c in inspect(engine).get_columns(t)} for t in ("track_second", "camera_second",
                                                                          "content_second")}
    with engine.begin() as connection:
        for table, column, source in (("track_second", "n_read", "n"), ("camera_second", "k_read", "k"),
                                      ("content_second", "k_read", "k")):
            if column not in have[table]:
                connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"))
                connection.execute(text(f"UPDATE {table} SET {column} = {source}"))
