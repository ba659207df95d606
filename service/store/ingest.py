"""Idempotent ingest of per-track-second statistics: validate a columnar batch, write each camera-second
(an *atom*) once, whole, and add new atoms to the per-second sums."""
from __future__ import annotations

import numpy as np
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from vision.errors import Conflict, Invalid
from vision.stats import INT_KEYS, SECOND_KEYS

from ..models import MAX_SECONDS, Screening, camera_second, track_second
from .sums import add_to_seconds


ROW_KEYS = SECOND_KEYS  # the per-track-second batch (vision.stats.track_seconds), stored as is

MAX_ROWS = 50_000  # per batch: bigger ones are refused (422), so one request cannot hold the database long


def check_columns(columns: dict[str, list]) -> dict[str, np.ndarray]:
    """Validate a columnar batch with NumPy: every key, equal lengths, finite numbers, whole ids, seconds
    and counts, n >= 1, each (track_id, second) once."""
    missing = [k for k in ROW_KEYS if k not in columns]
    if missing:
        raise Invalid(f"missing columns {', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}")
    extra = set(columns) - set(ROW_KEYS)
    if extra:
        raise Invalid(f"unknown columns {', '.join(sorted(extra)[:5])}")
    lengths = {len(columns[k]) for k in ROW_KEYS}
    if len(lengths) != 1:
        raise Invalid("all columns must have the same length")
    if lengths.pop() > MAX_ROWS:
        raise Invalid(f"a batch holds at most {MAX_ROWS:,} rows; split it")
    out = {}
    for k in ROW_KEYS:
        try:
            a = np.asarray(columns[k], dtype=np.float64)
        except (TypeError, ValueError):
            raise Invalid(f"column {k}: values must be numbers") from None
        if a.ndim != 1 or not np.isfinite(a).all():
            raise Invalid(f"column {k}: values must be finite numbers")
        if k in INT_KEYS:
            if (a != np.round(a)).any() or np.abs(a).max(initial=0) > (MAX_SECONDS if k == "second" else 2 ** 31 - 1):
                raise Invalid(f"column {k}: values must be whole numbers"
                              f"{f' within +-{MAX_SECONDS:,}' if k == 'second' else ''}")
            a = a.astype(np.int64)
        out[k] = a
    if (out["n"] < 1).any():
        raise Invalid("column n: every count must be >= 1")
    keys = out["track_id"] * (2 ** 32) + out["second"]
    if len(np.unique(keys)) != len(keys):
        raise Invalid("a batch holds each (track_id, second) at most once")
    return out


def ingest(session: Session, screening_id: int, camera: str, columns: dict[str, list],
           covered: list[int] | None = None) -> tuple[int, int]:
    """Store per-track-second statistics idempotently. A camera-second (one camera of the screening in
    one second of content time: an *atom* of every released statistic) is written once, whole: a batch
    second that is already stored must repeat it exactly (the same tracks with the same numbers: a
    replay, `unchanged`), otherwise the batch raises Conflict and nothing of it is written, so no one can
    add tracks to a stored atom to lift it over the minimum audience size. `columns` is the batch as
    columns (vision.stats.track_seconds; arrays or lists); `covered` the seconds the camera analysed, with or
    without faces (stored as k = 0 where nothing else is). Returns (inserted, unchanged)."""
    cols = check_columns(columns)
    empty = _uncovered(session, screening_id, camera, covered)
    n = len(cols["n"])
    if n == 0:
        if empty:
            add_to_seconds(session, screening_id, session.get(Screening, screening_id).content_id, camera,
                            cols, empty)
        session.commit()
        return 0, 0
    seconds, counts = np.unique(cols["second"], return_counts=True)
    cs = camera_second.c
    stored_k = dict(session.execute(select(cs.second, cs.k).where(and_(
        cs.screening_id == screening_id, cs.camera == camera,
        cs.second.between(int(seconds[0]), int(seconds[-1]))))).all())
    written = [int(s) for s in seconds if int(s) in stored_k]
    is_new = ~np.isin(cols["second"], written)
    if written:  # a replay of stored atoms must match them exactly, track for track
        def refuse(second: int):  # one message whatever differs: it must not tell how many tracks are stored
            return Conflict(f"second {second} of camera {camera!r} is already stored with other tracks or values: "
                            "a camera-second is written once, whole")

        for s, c in zip(seconds.tolist(), counts.tolist()):
            if s in stored_k and stored_k[s] != c:
                raise refuse(s)
        ts = track_second.c
        stored = session.execute(
            select(*[ts[k] for k in ROW_KEYS]).where(and_(ts.screening_id == screening_id, ts.camera == camera,
                                                          ts.second.in_(written)))).all()
        old = np.array([tuple(r) for r in stored], np.float64).reshape(len(stored), len(ROW_KEYS))
        index = {(int(t), int(s)): i for i, (t, s) in enumerate(old[:, :2])}
        batch = np.stack([cols[k] for k in ROW_KEYS], axis=1).astype(np.float64)
        for i in np.flatnonzero(~is_new):
            j = index.get((int(cols["track_id"][i]), int(cols["second"][i])))
            if j is None or not np.allclose(old[j, 2:], batch[i, 2:], rtol=1e-9, atol=1e-9):
                raise refuse(int(cols["second"][i]))
    fresh = np.flatnonzero(is_new)
    if len(fresh):
        _insert_track_rows(session, screening_id, camera, {k: cols[k][fresh].tolist() for k in ROW_KEYS})
    if len(fresh) or empty:
        add_to_seconds(session, screening_id, session.get(Screening, screening_id).content_id, camera,
                        {k: cols[k][fresh] for k in ROW_KEYS}, empty)
    session.commit()
    return int(len(fresh)), int(n - len(fresh))


def second_chunks(columns: dict[str, np.ndarray], limit: int) -> list[dict[str, np.ndarray]]:
    """One camera's batch (columns) cut into batches of at most `limit` rows without splitting a second,
    in order of second: a camera-second is written once, whole (see ingest)."""
    columns = {k: np.asarray(v) for k, v in columns.items()}
    second = columns["second"]
    order = np.argsort(second, kind="stable")
    second = second[order]
    chunks: list[dict[str, np.ndarray]] = []
    start = 0
    while start < len(second):
        end = min(start + limit, len(second))
        if end < len(second) and second[end] == second[end - 1]:
            end = int(np.searchsorted(second, second[end], "left"))  # back to where that second begins
            if end == start:
                raise Invalid(f"second {int(second[start])} holds more than {limit:,} tracks of one camera")
        chunks.append({k: v[order[start:end]] for k, v in columns.items()})
        start = end
    return chunks


def _uncovered(session: Session, screening_id: int, camera: str, covered: list[int] | None) -> list[int]:
    """The covered seconds that have no per-second row yet."""
    if not covered:
        return []
    try:
        wanted = {int(c) for c in covered}
    except (TypeError, ValueError):
        raise Invalid("covered: seconds must be whole numbers") from None
    cs = camera_second.c
    have = {r[0] for r in session.execute(select(cs.second).where(and_(
        cs.screening_id == screening_id, cs.camera == camera, cs.second.between(min(wanted), max(wanted)))))}
    return sorted(wanted - have)


def _insert_track_rows(session: Session, screening_id: int, camera: str, values: dict[str, list]) -> None:
    """Bulk insert through the driver's own cursor (SQLAlchemy's per-row parameter handling cost more than
    the database): COPY on PostgreSQL, executemany of plain tuples on SQLite."""
    names = ("screening_id", "camera") + ROW_KEYS
    rows = list(zip([screening_id] * len(values["n"]), [camera] * len(values["n"]), *(values[k] for k in ROW_KEYS)))
    connection = session.connection()
    try:
        _driver_insert(connection, names, rows)
    except connection.dialect.dbapi.IntegrityError as exc:  # a concurrent batch stored some keys first
        raise IntegrityError("INSERT INTO track_second", None, exc) from None


def _driver_insert(connection, names: tuple[str, ...], rows: list[tuple]) -> None:
    if connection.dialect.name == "postgresql":
        with connection.connection.cursor() as cursor:
            # binary COPY: the server parses no float text (2x faster than text COPY here)
            with cursor.copy(f"COPY track_second ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text"] + ["int4"] * len(INT_KEYS) + ["float8"] * (len(ROW_KEYS) - len(INT_KEYS)))
                for row in rows:
                    copy.write_row(row)
        return
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(f"INSERT INTO track_second ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                           rows)
    finally:
        cursor.close()
