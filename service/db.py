"""Engine and sessions. SQLite file by default; PostgreSQL by URL. Created at start-up, not import."""
from __future__ import annotations

import importlib
import time
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlmodel import Session, SQLModel, create_engine, select

from .models import SCHEMA_VERSION, SchemaVersion

DEFAULT_DB = "sqlite:///audience.db"


def make_engine(url: str = DEFAULT_DB, lock_timeout_s: float = 30.0) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite://":
            Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # one writer at a time: wait up to 30 s for the lock (concurrent ingests queue instead of failing;
        # past that the API answers 503 + Retry-After)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": lock_timeout_s})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def _create_all(engine: Engine, attempts: int = 5) -> None:
    """create_all, tolerating another process that creates the same tables at the same moment (two
    `serve` started together on a new file): its CREATE wins, ours fails with "already exists" and the
    next round finds the table and skips it."""
    for attempt in range(attempts):
        try:
            SQLModel.metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            message = str(exc).lower()
            if attempt == attempts - 1 or not ("already exists" in message or "duplicate" in message):
                raise
            time.sleep(0.05 * (attempt + 1))


def migrate(engine: Engine) -> int:
    """Create what is missing, run the steps from the stored schema version up to this program's, and
    record it. Refuses a database written by a newer version."""
    from . import auth, store  # their tables join the metadata (and are used below)

    importlib.import_module(f"{__package__}.reaction_store")  # its tables join the metadata
    from .models import Content

    _create_all(engine)
    _add_value_columns(engine)
    if engine.dialect.name == "sqlite":
        _never_reuse_ids(engine)
    with engine.begin() as conn:  # create_all adds an index only with its table: older databases get it here
        conn.execute(text("CREATE INDEX IF NOT EXISTS ix_camera_second_screening_k "
                          "ON camera_second (screening_id, k, second)"))
    with Session(engine) as session:
        row = session.exec(select(SchemaVersion)).first()
        if row is None:
            session.add(SchemaVersion(id=1, version=SCHEMA_VERSION))
            try:
                session.commit()
                return SCHEMA_VERSION
            except IntegrityError:  # another process created the schema at the same moment
                session.rollback()
                row = session.exec(select(SchemaVersion)).one()
        if row.version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema version {row.version} is newer than this program's {SCHEMA_VERSION}")
        if row.version < 6:  # versions 2 and 6 added the content-wide rollups: build them from what is stored
            for content in session.exec(select(Content)).all():
                store.refresh_content(session, content.id)
        # version 3 added content_revision: create_all made it; a content without a row is at revision 0
        if row.version < 6:  # keys that ever existed keep the service closed (auth_state, made by create_all)
            if session.exec(select(auth.ApiKey.id)).first() is not None and not auth.keys_required(session):
                auth.set_required(session, True, "migrated: keys existed")
        row.version = SCHEMA_VERSION
        session.add(row)
        session.commit()
        return SCHEMA_VERSION


def _never_reuse_ids(engine: Engine) -> None:
    """Rebuild SQLite tables made before schema 6 with AUTOINCREMENT, so that an id freed by a delete is
    never given to a new row (a cached curve or a key limited to a deleted content would see its
    successor). SQLite cannot add AUTOINCREMENT in place: the table is renamed, made anew, refilled and
    dropped, with foreign keys off meanwhile (the standard procedure); ids stay as they were."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in SQLModel.metadata.sorted_tables:
            if not table.dialect_options["sqlite"]["autoincrement"]:
                continue
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type='table' AND name=?",
                                       (table.name,)).scalar()
            if sql is None or "AUTOINCREMENT" in sql.upper():
                continue
            columns = ", ".join(f'"{c.name}"' for c in table.columns)
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql("PRAGMA legacy_alter_table=ON")  # other tables keep referring to the name
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                for (index,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index' AND "
                                                     "tbl_name=? AND sql IS NOT NULL", (table.name,)).all():
                    conn.exec_driver_sql(f'DROP INDEX "{index}"')
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "_old_{table.name}"')
                table.create(conn)
                conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "_old_{table.name}"')
                conn.exec_driver_sql(f'DROP TABLE "_old_{table.name}"')
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            finally:
                conn.exec_driver_sql("PRAGMA legacy_alter_table=OFF")
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def _add_value_columns(engine: Engine) -> None:
    """Statistics tables made before a value was added (schema 6: the `<value>_delta` columns) get its
    columns, 0 in the rows already stored (they were never read against a baseline)."""
    from sqlalchemy import inspect

    from .models import camera_second, content_second, track_second

    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in (track_second, camera_second, content_second):
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" '
                                         f"FLOAT NOT NULL DEFAULT 0")
