"""Every database query of the service, in one place."""
from __future__ import annotations

import numpy as np
from sqlalchemy import and_, delete, func, select
from sqlmodel import Session

from .models import Content, Screening, camera_second, content_second, track_second
from .stats import VALUES, curve_points, second_aggregates, welch_half_width

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
        seconds = sorted({r["second"] for r in new})
        _refresh_seconds(session, screening_id, camera, seconds)
        content_id = session.get(Screening, screening_id).content_id
        _refresh_content(session, content_id, seconds)
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
    query = select(cs.second, func.sum(cs.k).label("k"), *sums).where(and_(*where)).group_by(cs.second)
    rows = [{"content_id": content_id, **dict(r._mapping)} for r in session.execute(query)]
    if rows:
        session.execute(content_second.insert(), rows)


def screenings_of(session: Session, content_id: int, ids: list[int] | None, segment: dict[str, str]) -> list[int]:
    query = select(Screening).where(Screening.content_id == content_id)
    found = [s for (s,) in session.execute(query)]
    if ids is not None:
        found = [s for s in found if s.id in set(ids)]
    return sorted(s.id for s in found if all(s.labels.get(k) == v for k, v in segment.items()))


def curve_sums(session: Session, screening_ids: list[int], metrics: list[str], bucket: float,
               content_id: int | None = None) -> np.ndarray:
    """[buckets, 2 + 2 * metrics]: bucket index, k faces, then per metric the sum and sum of squares of
    the faces' means. `content_id` given means `screening_ids` are all of that content's screenings."""
    if not screening_ids:
        return np.zeros((0, 2 + 2 * len(metrics)))
    if bucket == 1.0 and content_id is not None:  # the content-wide rollup
        cs = content_second.c
        cols = [cs.second.label("b"), cs.k.label("k")]
        for m in metrics:
            cols += [cs[f"m_{m}"].label(f"m_{m}"), cs[f"mm_{m}"].label(f"mm_{m}")]
        query = select(*cols).where(cs.content_id == content_id).order_by(cs.second)
    elif bucket == 1.0:  # the stored per-second aggregates: sums of sums
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
    rows = session.execute(query).all()
    # Row -> tuple first: NumPy on Row objects is 30x slower
    return np.array([tuple(r) for r in rows], np.float64).reshape(len(rows), 2 + 2 * len(metrics))


def curves(session: Session, screening_ids: list[int], metrics: list[str], bucket: float,
           content_id: int | None = None) -> dict:
    """Per bucket of content time: t, n faces, and mean and 95% CI of each metric over faces (columnar)."""
    data = curve_sums(session, screening_ids, metrics, bucket, content_id)
    out = {"t": [], "n": [], "mean": {m: [] for m in metrics}, "ci95": {m: [] for m in metrics}}
    if len(data) == 0:
        return out
    k = data[:, 1]
    out["t"] = (data[:, 0] * bucket).tolist()
    out["n"] = k.astype(np.int64).tolist()
    for j, m in enumerate(metrics):
        mean, half = curve_points(k, data[:, 2 + 2 * j], data[:, 3 + 2 * j])
        out["mean"][m] = _nulls(mean)
        out["ci95"][m] = _nulls(half)
    return out


def compare(session: Session, a_ids: list[int], b_ids: list[int], metrics: list[str], bucket: float) -> dict:
    """Difference of two selections' curves, A - B, per bucket where both have faces, with a Welch 95%
    half-width (the two audiences are independent)."""
    a = curve_sums(session, a_ids, metrics, bucket)
    b = curve_sums(session, b_ids, metrics, bucket)
    common = np.intersect1d(a[:, 0], b[:, 0]) if len(a) and len(b) else np.zeros(0)
    a, b = a[np.isin(a[:, 0], common)], b[np.isin(b[:, 0], common)]
    out = {"t": (common * bucket).tolist(), "n_a": a[:, 1].astype(np.int64).tolist(),
           "n_b": b[:, 1].astype(np.int64).tolist(), "diff": {}, "ci95": {}}
    for j, m in enumerate(metrics):
        mean_a, _ = curve_points(a[:, 1], a[:, 2 + 2 * j], a[:, 3 + 2 * j])
        mean_b, _ = curve_points(b[:, 1], b[:, 2 + 2 * j], b[:, 3 + 2 * j])
        out["diff"][m] = _nulls(mean_a - mean_b)
        out["ci95"][m] = _nulls(welch_half_width(a[:, 1], a[:, 2 + 2 * j], a[:, 3 + 2 * j],
                                                 b[:, 1], b[:, 2 + 2 * j], b[:, 3 + 2 * j]))
    return out


def _nulls(a: np.ndarray) -> list:
    return [None if v != v else v for v in a.tolist()]


def delete_screening(session: Session, screening: Screening) -> None:
    """The screening and everything derived from it, children first; the content's sums follow."""
    for table in (track_second, camera_second):
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
    for table in (track_second, camera_second):
        session.execute(delete(table).where(table.c.screening_id.in_(ids)))
    session.execute(delete(content_second).where(content_second.c.content_id == content.id))
    session.execute(delete(Screening).where(Screening.content_id == content.id))
    session.flush()
    session.delete(content)
    session.commit()


def screening_means(session: Session, screening_ids: list[int], metric: str) -> dict[int, dict[int, float]]:
    """Per screening, per second: the mean of a metric over that screening's faces."""
    cs = camera_second.c
    query = (select(cs.screening_id, cs.second, func.sum(cs.k), func.sum(cs[f"m_{metric}"]))
             .where(cs.screening_id.in_(screening_ids)).group_by(cs.screening_id, cs.second))
    out: dict[int, dict[int, float]] = {}
    for sid, second, k, total in session.execute(query).all():
        if k:
            out.setdefault(int(sid), {})[int(second)] = float(total) / int(k)
    return out
