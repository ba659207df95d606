"""Every database query of the service, in one place."""
from __future__ import annotations

from sqlalchemy import and_, delete, func, select
from sqlmodel import Session

from .models import Content, Screening, camera_second, track_second
from .stats import VALUES, curve_point, second_aggregates

ROW_KEYS = ("track_id", "second", "n") + tuple(f"s_{v}" for v in VALUES) + tuple(f"q_{v}" for v in VALUES)


class Conflict(Exception):
    """A batch disagrees with what is already stored for the same keys."""


class Invalid(Exception):
    """A batch row is malformed."""


def _check_rows(rows: list[dict]) -> list[dict]:
    clean = []
    for i, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise Invalid(f"row {i}: missing {', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}")
        extra = set(row) - set(ROW_KEYS) - {"camera"}
        if extra:
            raise Invalid(f"row {i}: unknown fields {', '.join(sorted(extra)[:5])}")
        try:
            r = {k: (int(row[k]) if k in ("track_id", "second", "n") else float(row[k])) for k in ROW_KEYS}
        except (TypeError, ValueError):
            raise Invalid(f"row {i}: values must be numbers") from None
        if r["n"] < 1:
            raise Invalid(f"row {i}: n must be >= 1")
        if any(v != v or v in (float("inf"), float("-inf")) for v in r.values()):
            raise Invalid(f"row {i}: values must be finite")
        clean.append(r)
    keys = {(r["track_id"], r["second"]) for r in clean}
    if len(keys) != len(clean):
        raise Invalid("a batch holds each (track_id, second) at most once")
    return clean


def _same(a: dict, b: dict) -> bool:
    return a["n"] == b["n"] and all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(a[k]), abs(b[k]))
                                    for k in ROW_KEYS[3:])


def ingest(session: Session, screening_id: int, camera: str, rows: list[dict]) -> tuple[int, int]:
    """Store per-track-second statistics idempotently: a row already stored with the same numbers is
    skipped, one stored with different numbers raises Conflict and nothing of the batch is written.
    Returns (inserted, unchanged)."""
    rows = _check_rows(rows)
    if not rows:
        return 0, 0
    seconds = sorted({r["second"] for r in rows})
    existing = {(r.track_id, r.second): dict(r._mapping) for r in session.execute(
        select(track_second).where(and_(track_second.c.screening_id == screening_id, track_second.c.camera == camera,
                                        track_second.c.second.between(seconds[0], seconds[-1]))))}
    new, unchanged = [], 0
    for r in rows:
        old = existing.get((r["track_id"], r["second"]))
        if old is None:
            new.append({"screening_id": screening_id, "camera": camera, **r})
        elif _same(old, r):
            unchanged += 1
        else:
            raise Conflict(f"track {r['track_id']} second {r['second']} of camera {camera!r} is already stored "
                           f"with other values")
    if new:
        session.execute(track_second.insert(), new)
        _refresh_seconds(session, screening_id, camera, sorted({r["second"] for r in new}))
    session.commit()
    return len(new), unchanged


def _refresh_seconds(session: Session, screening_id: int, camera: str, seconds: list[int]) -> None:
    """Recompute the per-second aggregates of the given seconds from the per-track rows."""
    rows = [dict(r._mapping) for r in session.execute(
        select(track_second).where(and_(track_second.c.screening_id == screening_id, track_second.c.camera == camera,
                                        track_second.c.second.in_(seconds))))]
    session.execute(delete(camera_second).where(and_(camera_second.c.screening_id == screening_id,
                                                     camera_second.c.camera == camera,
                                                     camera_second.c.second.in_(seconds))))
    aggregates = second_aggregates(rows)
    if aggregates:
        session.execute(camera_second.insert(), [{"screening_id": screening_id, **a} for a in aggregates])


def screenings_of(session: Session, content_id: int, ids: list[int] | None, segment: dict[str, str]) -> list[int]:
    query = select(Screening).where(Screening.content_id == content_id)
    found = [s for (s,) in session.execute(query)]
    if ids is not None:
        found = [s for s in found if s.id in set(ids)]
    return sorted(s.id for s in found if all(s.labels.get(k) == v for k, v in segment.items()))


def curves(session: Session, screening_ids: list[int], metrics: list[str], bucket: float) -> list[dict]:
    """Per bucket of content time: n faces, and mean and 95% CI of each metric over faces."""
    if not screening_ids:
        return []
    if bucket == 1.0:  # the stored per-second aggregates: sums of sums
        cs = camera_second.c
        cols = [cs.second.label("b"), func.sum(cs.k).label("k")]
        for m in metrics:
            cols += [func.sum(cs[f"m_{m}"]).label(f"m_{m}"), func.sum(cs[f"mm_{m}"]).label(f"mm_{m}")]
        query = select(*cols).where(cs.screening_id.in_(screening_ids)).group_by(cs.second).order_by(cs.second)
    else:  # per track and bucket first, then over tracks
        ts = track_second.c
        b = func.floor(ts.second / bucket).label("b")
        inner_cols = [b] + [(func.sum(ts[f"s_{m}"]) / func.sum(ts.n)).label(m) for m in metrics]
        inner = (select(*inner_cols).where(ts.screening_id.in_(screening_ids))
                 .group_by(ts.screening_id, ts.camera, ts.track_id, b).subquery())
        cols = [inner.c.b, func.count().label("k")]
        for m in metrics:
            cols += [func.sum(inner.c[m]).label(f"m_{m}"), func.sum(inner.c[m] * inner.c[m]).label(f"mm_{m}")]
        query = select(*cols).group_by(inner.c.b).order_by(inner.c.b)
    points = []
    for row in session.execute(query):
        r = row._mapping
        mean, ci = {}, {}
        for m in metrics:
            mean[m], ci[m] = curve_point(int(r["k"]), float(r[f"m_{m}"]), float(r[f"mm_{m}"]))
        points.append({"t": float(r["b"]) * bucket, "n": int(r["k"]), "mean": mean, "ci95": ci})
    return points


def delete_screening(session: Session, screening: Screening) -> None:
    """The screening and everything derived from it, children first."""
    for table in (track_second, camera_second):
        session.execute(delete(table).where(table.c.screening_id == screening.id))
    session.flush()
    session.delete(screening)
    session.commit()


def delete_content(session: Session, content: Content) -> None:
    """The content and everything derived from it, children first."""
    ids = [s.id for (s,) in session.execute(select(Screening).where(Screening.content_id == content.id)).all()]
    for table in (track_second, camera_second):
        session.execute(delete(table).where(table.c.screening_id.in_(ids)))
    session.execute(delete(Screening).where(Screening.content_id == content.id))
    session.flush()
    session.delete(content)
    session.commit()
