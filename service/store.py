"""Every database query of the service, in one place."""
from __future__ import annotations

import numpy as np
from sqlalchemy import and_, case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from .models import (Content, Screening, camera_gap, camera_second, content_revision, content_second, live_source,
                     track_second)
from .stats import PRESENT, VALUES, curve_points, welch_half_width

ROW_KEYS = ("track_id", "second", "n", "n_read") + tuple(f"s_{v}" for v in VALUES) + tuple(f"q_{v}" for v in VALUES)
OPTIONAL_KEYS = {"n_read": "n"}  # a batch without read counts (an older client): every sample was read


class Conflict(Exception):
    """A batch disagrees with what is already stored for the same keys."""


class Invalid(Exception):
    """A batch row is malformed."""


INT_KEYS = ("track_id", "second", "n", "n_read")
MAX_ROWS = 50_000  # per batch: bigger ones are refused (422), so one request cannot hold the database long


def retrying(session: Session, action):
    """Run a write; when a concurrent writer stored some of the same keys first (IntegrityError), roll
    back and run it once more: the second run sees their rows and judges against them."""
    try:
        return action()
    except IntegrityError:
        session.rollback()
        return action()


def rows_to_columns(rows: list[dict]) -> dict[str, list]:
    """The row form of a batch (a list of dicts) -> the columnar form."""
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise Invalid(f"row {i}: must be an object")
        missing = [k for k in ROW_KEYS if k not in row and k not in OPTIONAL_KEYS]
        if missing:
            raise Invalid(f"row {i}: missing {', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}")
        extra = set(row) - set(ROW_KEYS) - {"camera"}
        if extra:
            raise Invalid(f"row {i}: unknown fields {', '.join(sorted(extra)[:5])}")
    return {k: [row.get(k, row.get(OPTIONAL_KEYS.get(k))) for row in rows] for k in ROW_KEYS}


def check_columns(columns: dict[str, list]) -> dict[str, np.ndarray]:
    """Validate a columnar batch with NumPy: every key, equal lengths, finite numbers, whole ids, seconds
    and counts, n >= 1, 0 <= n_read <= n, each (track_id, second) once."""
    columns = {**{k: columns[v] for k, v in OPTIONAL_KEYS.items() if k not in columns and v in columns}, **columns}
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
            if (a != np.round(a)).any() or np.abs(a).max(initial=0) > 2 ** 31 - 1:
                raise Invalid(f"column {k}: values must be whole numbers")
            a = a.astype(np.int64)
        out[k] = a
    if (out["n"] < 1).any():
        raise Invalid("column n: every count must be >= 1")
    if ((out["n_read"] < 0) | (out["n_read"] > out["n"])).any():
        raise Invalid("column n_read: every read count must be within 0..n")
    keys = out["track_id"] * (2 ** 32) + out["second"]
    if len(np.unique(keys)) != len(keys):
        raise Invalid("a batch holds each (track_id, second) at most once")
    return out


def ingest(session: Session, screening_id: int, camera: str, columns: dict[str, list],
           covered: list[int] | None = None) -> tuple[int, int]:
    """Store per-track-second statistics idempotently: a row already stored with the same numbers is
    skipped, one stored with different numbers raises Conflict and nothing of the batch is written.
    `columns` is the columnar batch (see rows_to_columns for the row form); `covered` the seconds the
    camera analysed, with or without faces (stored as k = 0 where nothing else is). Returns (inserted,
    unchanged)."""
    cols = check_columns(columns)
    empty = _uncovered(session, screening_id, camera, covered)
    n = len(cols["n"])
    if n == 0:
        if empty:
            _add_to_seconds(session, screening_id, session.get(Screening, screening_id).content_id, camera,
                            cols, empty)
        session.commit()
        return 0, 0
    ts = track_second.c
    stored = session.execute(
        select(*[ts[k] for k in ROW_KEYS]).where(and_(ts.screening_id == screening_id, ts.camera == camera,
                                                      ts.second.between(int(cols["second"].min()),
                                                                        int(cols["second"].max()))))).all()
    is_new = np.ones(n, bool)
    if stored:
        old = np.array([tuple(r) for r in stored], np.float64)
        index = {(int(t), int(s)): i for i, (t, s) in enumerate(old[:, :2])}
        batch = np.stack([cols[k] for k in ROW_KEYS], axis=1).astype(np.float64)
        for i in range(n):
            j = index.get((int(cols["track_id"][i]), int(cols["second"][i])))
            if j is None:
                continue
            if not np.allclose(old[j, 2:], batch[i, 2:], rtol=1e-9, atol=1e-9):
                raise Conflict(f"track {int(cols['track_id'][i])} second {int(cols['second'][i])} of camera "
                               f"{camera!r} is already stored with other values")
            is_new[i] = False
    fresh = np.flatnonzero(is_new)
    if len(fresh):
        _insert_track_rows(session, screening_id, camera, {k: cols[k][fresh].tolist() for k in ROW_KEYS})
    if len(fresh) or empty:
        _add_to_seconds(session, screening_id, session.get(Screening, screening_id).content_id, camera,
                        {k: cols[k][fresh] for k in ROW_KEYS}, empty)
    session.commit()
    return int(len(fresh)), int(n - len(fresh))


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


def _add_to_seconds(session: Session, screening_id: int, content_id: int, camera: str,
                    fresh: dict[str, np.ndarray], empty_seconds: list[int] = ()) -> None:
    """Add new track rows to the per-second aggregates (camera_second and the content's content_second):
    per second, k tracks and the sum and sum of squares of their means, summed in NumPy and added with
    one upsert per table (INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x). New rows are new
    (track, second) keys (ingest checked), so adding is exact; concurrent batches serialise on the rows."""
    seconds, where = np.unique(np.concatenate([fresh["second"], np.asarray(empty_seconds, np.int64)]),
                               return_inverse=True)
    where = where.reshape(-1)[:len(fresh["second"])]  # the empty seconds add rows with k = 0 and zero sums
    k = np.bincount(where, minlength=len(seconds))
    read = fresh["n_read"] > 0
    k_read = np.bincount(where, read, len(seconds))
    sums = {}
    for v in VALUES:  # attention over every face present, expressions over the faces read
        mean = fresh[f"s_{v}"] / (fresh["n"] if v in PRESENT else np.maximum(fresh["n_read"], 1))
        sums[f"m_{v}"] = np.bincount(where, mean, len(seconds))
        sums[f"mm_{v}"] = np.bincount(where, mean * mean, len(seconds))
    names = ["k", "k_read"] + list(sums)
    values = [{"second": int(sec), "k": int(k[i]), "k_read": int(k_read[i]), **{c: float(a[i]) for c, a in sums.items()}}
              for i, sec in enumerate(seconds)]
    for table, keys in ((camera_second, {"screening_id": screening_id, "camera": camera}),
                        (content_second, {"content_id": content_id})):
        _upsert(session, table, [{**keys, **row} for row in values], [*keys, "second"],
                lambda new, table=table: {c: table.c[c] + new[c] for c in names})
    _bump_revision(session, content_id)


def _refresh_content(session: Session, content_id: int, seconds: list[int] | None = None) -> None:
    """Recompute the content-wide per-second sums (all seconds when `seconds` is None)."""
    cs = camera_second.c
    ids = select(Screening.id).where(Screening.content_id == content_id)
    where = [cs.screening_id.in_(ids)]
    drop = [content_second.c.content_id == content_id]
    if seconds is not None:
        where.append(cs.second.in_(seconds))
        drop.append(content_second.c.second.in_(seconds))
    session.execute(delete(content_second).where(and_(*drop)))
    sums = [func.sum(cs[f"{p}_{v}"]).label(f"{p}_{v}") for p in ("m", "mm") for v in VALUES]
    query = select(cs.second, func.sum(cs.k).label("k"), func.sum(cs.k_read).label("k_read"), *sums
                   ).where(and_(*where)).group_by(cs.second)
    rows = [{"content_id": content_id, **dict(r._mapping)} for r in session.execute(query)]
    if rows:
        session.execute(content_second.insert(), rows)
    _bump_revision(session, content_id)


def _bump_revision(session: Session, content_id: int) -> None:
    cr = content_revision.c
    done = session.execute(content_revision.update().where(cr.content_id == content_id)
                           .values(revision=cr.revision + 1)).rowcount
    if not done:
        session.execute(content_revision.insert().values(content_id=content_id, revision=1))


def revision(session: Session, content_id: int) -> int:
    """How many times the content's statistics have changed (0: never): cached answers carry it."""
    cr = content_revision.c
    return session.execute(select(cr.revision).where(cr.content_id == content_id)).scalar() or 0


def screenings_of(session: Session, content_id: int, ids: list[int] | None, segment: dict[str, str]) -> list[int]:
    query = select(Screening).where(Screening.content_id == content_id)
    found = [s for (s,) in session.execute(query)]
    if ids is not None:
        found = [s for s in found if s.id in set(ids)]
    return sorted(s.id for s in found if all(s.labels.get(k) == v for k, v in segment.items()))


def curve_sums(session: Session, screening_ids: list[int], metrics: list[str], bucket: float,
               content_id: int | None = None) -> np.ndarray:
    """[buckets, 3 + 2 * metrics]: bucket index, k faces present, k faces read, then per metric the sum
    and sum of squares of the faces' means (attention: over the faces present; the others: over the faces
    read). `content_id` given means `screening_ids` are all of that content's screenings."""
    if not screening_ids:
        return np.zeros((0, 3 + 2 * len(metrics)))
    if bucket == 1.0 and content_id is not None:  # the content-wide rollup
        cs = content_second.c
        cols = [cs.second.label("b"), cs.k.label("k"), cs.k_read.label("k_read")]
        for m in metrics:
            cols += [cs[f"m_{m}"].label(f"m_{m}"), cs[f"mm_{m}"].label(f"mm_{m}")]
        query = select(*cols).where(cs.content_id == content_id).order_by(cs.second)
    elif bucket == 1.0:  # the stored per-second aggregates: sums of sums
        cs = camera_second.c
        cols = [cs.second.label("b"), func.sum(cs.k).label("k"), func.sum(cs.k_read).label("k_read")]
        for m in metrics:
            cols += [func.sum(cs[f"m_{m}"]).label(f"m_{m}"), func.sum(cs[f"mm_{m}"]).label(f"mm_{m}")]
        query = select(*cols).where(cs.screening_id.in_(screening_ids)).group_by(cs.second).order_by(cs.second)
    else:  # per track and bucket first, then over tracks
        ts = track_second.c
        b = func.floor(ts.second / bucket).label("b")
        inner_cols = [b, case((func.sum(ts.n_read) > 0, 1), else_=0).label("r")] + [
            (func.sum(ts[f"s_{m}"]) / (func.sum(ts.n) if m in PRESENT else func.nullif(func.sum(ts.n_read), 0))).label(m)
            for m in metrics]  # NULL (left out of the sums) for a face with nothing read
        inner = (select(*inner_cols).where(ts.screening_id.in_(screening_ids))
                 .group_by(ts.screening_id, ts.camera, ts.track_id, b).subquery())
        cols = [inner.c.b, func.count().label("k"), func.sum(inner.c.r).label("k_read")]
        for m in metrics:
            cols += [func.sum(inner.c[m]).label(f"m_{m}"), func.sum(inner.c[m] * inner.c[m]).label(f"mm_{m}")]
        query = select(*cols).group_by(inner.c.b).order_by(inner.c.b)
    return _fetch_numbers(session, query, 3 + 2 * len(metrics))


def _fetch_numbers(session: Session, query, width: int) -> np.ndarray:
    """A SELECT of numbers through the driver's own cursor, binary transfer on PostgreSQL: for a 7,200-row
    curve SQLAlchemy's Row objects and text parsing took 28-78 ms where this takes 12-15 ms."""
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    if connection.dialect.name == "postgresql":
        cursor, params = connection.connection.cursor(binary=True), compiled.params
    else:
        cursor, params = connection.connection.cursor(), [compiled.params[k] for k in compiled.positiontup]
    try:
        cursor.execute(str(compiled), params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return np.array(rows, np.float64).reshape(len(rows), width)


def curves(session: Session, screening_ids: list[int], metrics: list[str], bucket: float,
           content_id: int | None = None, min_tracks: int = 1) -> dict:
    """Per bucket of content time: t, n faces, and mean and 95% CI of each metric over faces (columnar).
    Buckets with fewer than `min_tracks` faces are suppressed: their mean and CI are null and
    `suppressed[i]` is true (a small segment must not describe one identifiable person)."""
    data = curve_sums(session, screening_ids, metrics, bucket, content_id)
    out = {"t": [], "n": [], "n_present": [], "mean": {m: [] for m in metrics}, "ci95": {m: [] for m in metrics},
           "suppressed": []}
    if len(data) == 0:
        return out
    k, k_read = data[:, 1], data[:, 2]
    hidden = ((k < min_tracks) & (k > 0)) | ((k_read < min_tracks) & (k_read > 0))
    out["t"] = (data[:, 0] * bucket).tolist()
    out["n"] = k_read.astype(np.int64).tolist()
    out["n_present"] = k.astype(np.int64).tolist()
    out["suppressed"] = hidden.tolist()
    for j, m in enumerate(metrics):
        mean, half = curve_points(k if m in PRESENT else k_read, data[:, 3 + 2 * j], data[:, 4 + 2 * j])
        out["mean"][m] = _nulls(np.where(hidden, np.nan, mean))
        out["ci95"][m] = _nulls(np.where(hidden, np.nan, half))
    return out


def compare(session: Session, a_ids: list[int], b_ids: list[int], metrics: list[str], bucket: float,
            min_tracks: int = 1) -> dict:
    """Difference of two selections' curves, A - B, per bucket where both have faces, with a Welch 95%
    half-width (the two audiences are independent). Null (and suppressed) where either side has fewer
    than `min_tracks` faces."""
    a = curve_sums(session, a_ids, metrics, bucket)
    b = curve_sums(session, b_ids, metrics, bucket)
    common = np.intersect1d(a[:, 0], b[:, 0]) if len(a) and len(b) else np.zeros(0)
    a, b = a[np.isin(a[:, 0], common)], b[np.isin(b[:, 0], common)]
    hidden = (np.minimum(a[:, 1], a[:, 2]) < min_tracks) | (np.minimum(b[:, 1], b[:, 2]) < min_tracks)
    out = {"t": (common * bucket).tolist(), "n_a": a[:, 2].astype(np.int64).tolist(),
           "n_b": b[:, 2].astype(np.int64).tolist(), "diff": {}, "ci95": {}, "suppressed": hidden.tolist()}
    for j, m in enumerate(metrics):
        c = 1 if m in PRESENT else 2  # the k column of this metric
        ka, kb = a[:, c], b[:, c]
        mean_a, _ = curve_points(ka, a[:, 3 + 2 * j], a[:, 4 + 2 * j])
        mean_b, _ = curve_points(kb, b[:, 3 + 2 * j], b[:, 4 + 2 * j])
        out["diff"][m] = _nulls(np.where(hidden, np.nan, mean_a - mean_b))
        out["ci95"][m] = _nulls(np.where(hidden, np.nan, welch_half_width(
            ka, a[:, 3 + 2 * j], a[:, 4 + 2 * j], kb, b[:, 3 + 2 * j], b[:, 4 + 2 * j])))
    return out


def _nulls(a: np.ndarray) -> list:
    return [None if v != v else v for v in a.tolist()]


SCREENING_TABLES = (track_second, camera_second, camera_gap, live_source)  # all that hangs off a screening


def _upsert(session: Session, table, rows: list[dict], keys: list[str], set_) -> None:
    """INSERT rows ... ON CONFLICT (keys) DO UPDATE SET set_(excluded), on PostgreSQL and SQLite alike;
    executemany, so the statement is compiled once whatever the number of rows."""
    if session.connection().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    session.execute(statement.on_conflict_do_update(index_elements=keys, set_=set_(statement.excluded)), rows)


def add_gap(session: Session, screening_id: int, camera: str, start_s: float, end_s: float, reason: str) -> None:
    """Record a gap; replaying it changes nothing (a gap is keyed by its start; its end only grows)."""
    if not end_s >= start_s:
        raise Invalid("a gap ends at or after its start")
    g = camera_gap.c
    _upsert(session, camera_gap, [{"screening_id": screening_id, "camera": camera, "start_s": start_s,
                                   "end_s": end_s, "reason": reason}],
            ["screening_id", "camera", "start_s"],
            lambda new: {"end_s": case((new.end_s > g.end_s, new.end_s), else_=g.end_s)})
    session.commit()


def gaps(session: Session, screening_ids: list[int]) -> list[dict]:
    g = camera_gap.c
    query = select(camera_gap).where(g.screening_id.in_(screening_ids)).order_by(g.screening_id, g.camera, g.start_s)
    return [dict(r._mapping) for r in session.execute(query)]


def set_source_state(session: Session, screening_id: int, camera: str, state: str, detail: dict) -> None:
    from datetime import datetime, timezone

    row = {"screening_id": screening_id, "camera": camera, "state": state, "detail": detail,
           "updated_at": datetime.now(timezone.utc)}
    _upsert(session, live_source, [row], ["screening_id", "camera"],
            lambda new: {"state": new.state, "detail": new.detail, "updated_at": new.updated_at})
    session.commit()


def source_states(session: Session, screening_id: int) -> list[dict]:
    s = live_source.c
    query = select(live_source).where(s.screening_id == screening_id).order_by(s.camera)
    return [dict(r._mapping) for r in session.execute(query)]


def delete_screening(session: Session, screening: Screening) -> None:
    """The screening and everything derived from it, children first; the content's sums follow."""
    for table in SCREENING_TABLES:
        session.execute(delete(table).where(table.c.screening_id == screening.id))
    session.flush()
    content_id = screening.content_id
    session.delete(screening)
    session.flush()
    _refresh_content(session, content_id)
    session.commit()


def delete_content(session: Session, content: Content) -> None:
    """The content and everything derived from it, children first."""
    ids = [s.id for (s,) in session.execute(select(Screening).where(Screening.content_id == content.id)).all()]
    for table in SCREENING_TABLES:
        session.execute(delete(table).where(table.c.screening_id.in_(ids)))
    for table in (content_second, content_revision):
        session.execute(delete(table).where(table.c.content_id == content.id))
    session.execute(delete(Screening).where(Screening.content_id == content.id))
    session.flush()
    session.delete(content)
    session.commit()


def screening_means(session: Session, screening_ids: list[int], metric: str,
                    min_tracks: int = 1) -> dict[int, dict[int, float]]:
    """Per screening, per second: the mean of a metric over that screening's faces (seconds with fewer
    than `min_tracks` faces left out)."""
    cs = camera_second.c
    query = (select(cs.screening_id, cs.second, func.sum(cs.k if metric in PRESENT else cs.k_read),
                    func.sum(cs[f"m_{metric}"]))
             .where(cs.screening_id.in_(screening_ids)).group_by(cs.screening_id, cs.second))
    out: dict[int, dict[int, float]] = {}
    for sid, second, k, total in session.execute(query).all():
        if k and k >= min_tracks:
            out.setdefault(int(sid), {})[int(second)] = float(total) / int(k)
    return out


def track_means(session: Session, screening_id: int) -> dict[str, list]:
    """Columnar per-track-second rows of one screening: camera, track_id, second, n, n_read, mean of every
    value (attention over the n samples, the others over the n_read samples read; null where none)."""
    ts = track_second.c
    means = [ts[f"s_{v}"] / (ts.n if v in PRESENT else func.nullif(ts.n_read, 0)) for v in VALUES]
    rows = session.execute(select(ts.camera, ts.track_id, ts.second, ts.n, ts.n_read, *means)
                           .where(ts.screening_id == screening_id)
                           .order_by(ts.camera, ts.track_id, ts.second)).all()
    names = ["camera", "track_id", "second", "n", "n_read", *VALUES]
    return {name: [r[i] for r in rows] for i, name in enumerate(names)}


def purge(session: Session, older_than_days: float, dry_run: bool = False) -> dict:
    """Retention: delete the screenings that started (or, without a start time, were created) more than
    `older_than_days` ago, with everything derived from them, then the contents that were created before
    the cutoff and have no screening left. Returns what was (or would be) deleted."""
    from datetime import datetime, timedelta, timezone

    cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)

    def aware(moment):
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    old = [s for (s,) in session.execute(select(Screening).order_by(Screening.id)).all()
           if (aware(s.started_at) or aware(s.created_at)) < cutoff]
    gone = {"screenings": [s.id for s in old], "contents": []}
    if not dry_run:
        for screening in old:
            delete_screening(session, screening)
    kept = {s.content_id for (s,) in session.execute(select(Screening)).all() if s.id not in gone["screenings"]}
    for (content,) in session.execute(select(Content).order_by(Content.id)).all():
        if content.id not in kept and aware(content.created_at) < cutoff:
            gone["contents"].append(content.id)
            if not dry_run:
                delete_content(session, content)
    return gone
