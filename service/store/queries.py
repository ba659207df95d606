"""Read queries: which screenings, released curves and comparisons (from whole atoms only), norms' means,
per-track rows."""
from __future__ import annotations

import numpy as np
from sqlalchemy import and_, func, select
from sqlmodel import Session

from vision.stats import VALUES, mean_ci95, welch_ci95

from ..models import ROLLUP_MIN_K, Screening, camera_second, content_rollup, track_second
from .sql import fetch_numbers


def screenings_of(session: Session, content_id: int, ids: list[int] | None, segment: dict[str, str]) -> list[int]:
    query = select(Screening).where(Screening.content_id == content_id)
    found = [s for (s,) in session.execute(query)]
    if ids is not None:
        found = [s for s in found if s.id in set(ids)]
    return sorted(s.id for s in found if all(s.labels.get(k) == v for k, v in segment.items()))


def curve_sums(session: Session, screening_ids: list[int], metrics: list[str], bucket: int,
               content_id: int | None = None, min_tracks: int = 1) -> np.ndarray:
    """[buckets, 3 + 2 * metrics]: bucket index, k released face-seconds, how many atoms were left out,
    then per metric the released sum and sum of squares of the face-second means.

    Every answer is a sum of whole *atoms*: one camera of one screening in one second of content time
    (a camera_second row). An atom with fewer than `min_tracks` faces (0 < k < min_tracks) is left out
    of every sum, and a bucket is a whole number of seconds, so the difference of any two answers is a
    union of atoms of at least `min_tracks` faces. The unit of a bucket is the face-second: its mean is
    the mean over the face-seconds of its released atoms (at 1 s: over faces, as the analysis computes
    it). `content_id` given means `screening_ids` are all of that content's screenings: the content-wide
    rollup of the atoms of >= ROLLUP_MIN_K faces is read, and the released atoms below that are added
    (nothing is ever subtracted: no figure is computed from a left-out value)."""
    width = 3 + 2 * len(metrics)
    if not screening_ids:
        return np.zeros((0, width))
    if min_tracks > ROLLUP_MIN_K:
        content_id = None
    below = ROLLUP_MIN_K  # the rollup holds the atoms of at least this many faces
    found = _released_sums(session, screening_ids, metrics, bucket, content_id, min_tracks)
    cs = camera_second.c  # both through index ix_camera_second_screening_k: the dense atoms are not read
    small = np.zeros((0, 1))
    if min_tracks > 1:  # where the atoms left out lie (their values are not even read)
        small = fetch_numbers(session, select(cs.second).where(and_(
            cs.screening_id.in_(screening_ids), cs.k > 0, cs.k < min_tracks)), 1)
    extra = np.zeros((0, 2 + 2 * len(metrics)))
    if content_id is not None and min_tracks < below:  # released atoms the rollup does not hold
        cols = [cs.second, cs.k] + [cs[f"{p}_{m}"] for m in metrics for p in ("m", "mm")]
        extra = fetch_numbers(session, select(*cols).where(and_(
            cs.screening_id.in_(screening_ids), cs.k >= max(min_tracks, 1), cs.k < below)), 2 + 2 * len(metrics))
    small_b, extra_b = np.floor(small[:, 0] / bucket), np.floor(extra[:, 0] / bucket)
    keys = np.union1d(np.union1d(found[:, 0], small_b), extra_b)
    out = np.zeros((len(keys), width))
    out[:, 0] = keys
    at = np.searchsorted(keys, found[:, 0])
    out[at, 1], out[at, 3:] = found[:, 1], found[:, 2:]
    np.add.at(out[:, 2], np.searchsorted(keys, small_b), 1)
    at = np.searchsorted(keys, extra_b)
    np.add.at(out[:, 1], at, extra[:, 1])
    np.add.at(out[:, 3:], at, extra[:, 2:])
    return out


def _released_sums(session: Session, screening_ids: list[int], metrics: list[str], bucket: int,
                   content_id: int | None, min_tracks: int) -> np.ndarray:
    """[buckets, 2 + 2 * metrics]: bucket index, k, then per metric sum and sum of squares; from the
    content-wide rollup (`content_id`) or from the atoms of at least `min_tracks` faces (and the covered
    seconds without faces) of the screenings."""
    if content_id is not None:
        cs = content_rollup.c
        where = cs.content_id == content_id
    else:
        cs = camera_second.c
        where = cs.screening_id.in_(screening_ids)
        if min_tracks > 1:
            where = and_(where, (cs.k >= min_tracks) | (cs.k == 0))
    if bucket == 1 and content_id is not None:
        cols = [cs.second.label("b"), cs.k.label("k")]
        for m in metrics:
            cols += [cs[f"m_{m}"].label(f"m_{m}"), cs[f"mm_{m}"].label(f"mm_{m}")]
        query = select(*cols).where(where).order_by(cs.second)
    else:
        b = cs.second if bucket == 1 else func.floor(cs.second / float(bucket))
        cols = [b.label("b"), func.sum(cs.k).label("k")]
        for m in metrics:
            cols += [func.sum(cs[f"m_{m}"]).label(f"m_{m}"), func.sum(cs[f"mm_{m}"]).label(f"mm_{m}")]
        query = select(*cols).where(where).group_by(b).order_by(b)
    return fetch_numbers(session, query, 2 + 2 * len(metrics))


def curves(session: Session, screening_ids: list[int], metrics: list[str], bucket: int,
           content_id: int | None = None, min_tracks: int = 1) -> dict:
    """Per bucket of content time: t, n face-seconds (at 1 s: faces), and mean and 95% CI of each metric
    over them (columnar), from the released atoms only (see curve_sums). A bucket whose atoms all had
    fewer than `min_tracks` faces is suppressed: n, mean and CI are null and `suppressed[i]` is true
    (a small segment must not describe one identifiable person, nor say how many it held)."""
    data = curve_sums(session, screening_ids, metrics, bucket, content_id, min_tracks)
    out = {"t": [], "n": [], "mean": {m: [] for m in metrics}, "ci95": {m: [] for m in metrics}, "suppressed": []}
    if len(data) == 0:
        return out
    k = data[:, 1]
    hidden = (k == 0) & (data[:, 2] > 0)
    out["t"] = (data[:, 0] * bucket).tolist()
    out["n"] = [None if h else v for h, v in zip(hidden.tolist(), k.astype(np.int64).tolist())]
    out["suppressed"] = hidden.tolist()
    for j, m in enumerate(metrics):
        mean, half = mean_ci95(k, data[:, 3 + 2 * j], data[:, 4 + 2 * j])
        out["mean"][m] = _nulls(np.where(hidden, np.nan, mean))
        out["ci95"][m] = _nulls(np.where(hidden, np.nan, half))
    return out


def compare(session: Session, a_ids: list[int], b_ids: list[int], metrics: list[str], bucket: int,
            min_tracks: int = 1) -> dict:
    """Difference of two selections' curves, A - B, per bucket where both have data, with a Welch 95%
    half-width (the two audiences are independent), from the released atoms only. Null (and suppressed)
    where either side has nothing but atoms of fewer than `min_tracks` faces."""
    a = curve_sums(session, a_ids, metrics, bucket, None, min_tracks)
    b = curve_sums(session, b_ids, metrics, bucket, None, min_tracks)
    common = np.intersect1d(a[:, 0], b[:, 0]) if len(a) and len(b) else np.zeros(0)
    a, b = a[np.isin(a[:, 0], common)], b[np.isin(b[:, 0], common)]
    hidden_a, hidden_b = (a[:, 1] == 0) & (a[:, 2] > 0), (b[:, 1] == 0) & (b[:, 2] > 0)
    hidden = hidden_a | hidden_b
    out = {"t": (common * bucket).tolist(),
           "n_a": [None if h else v for h, v in zip(hidden_a.tolist(), a[:, 1].astype(np.int64).tolist())],
           "n_b": [None if h else v for h, v in zip(hidden_b.tolist(), b[:, 1].astype(np.int64).tolist())],
           "diff": {}, "ci95": {}, "suppressed": hidden.tolist()}
    for j, m in enumerate(metrics):
        sa, qa, sb, qb = a[:, 3 + 2 * j], a[:, 4 + 2 * j], b[:, 3 + 2 * j], b[:, 4 + 2 * j]
        mean_a, _ = mean_ci95(a[:, 1], sa, qa)
        mean_b, _ = mean_ci95(b[:, 1], sb, qb)
        out["diff"][m] = _nulls(np.where(hidden, np.nan, mean_a - mean_b))
        out["ci95"][m] = _nulls(np.where(hidden, np.nan, welch_ci95(a[:, 1], sa, qa, b[:, 1], sb, qb)))
    return out


def _nulls(a: np.ndarray) -> list:
    return [None if v != v else v for v in a.tolist()]


def screening_means(session: Session, screening_ids: list[int], metric: str,
                    min_tracks: int = 1) -> dict[int, dict[int, float]]:
    """Per screening, per second: the mean of a metric over that screening's faces in its released atoms
    (a camera's second with fewer than `min_tracks` faces is left out; a second with none left is too)."""
    cs = camera_second.c
    query = (select(cs.screening_id, cs.second, func.sum(cs.k), func.sum(cs[f"m_{metric}"]))
             .where(and_(cs.screening_id.in_(screening_ids), cs.k >= min_tracks))
             .group_by(cs.screening_id, cs.second))
    out: dict[int, dict[int, float]] = {}
    for sid, second, k, total in session.execute(query).all():
        if k and k >= min_tracks:
            out.setdefault(int(sid), {})[int(second)] = float(total) / int(k)
    return out


def track_means(session: Session, screening_id: int) -> dict[str, list]:
    """Columnar per-track-second rows of one screening: camera, track_id, second, n, mean of every value."""
    ts = track_second.c
    rows = session.execute(select(ts.camera, ts.track_id, ts.second, ts.n, *[ts[f"s_{v}"] / ts.n for v in VALUES])
                           .where(ts.screening_id == screening_id)
                           .order_by(ts.camera, ts.track_id, ts.second)).all()
    names = ["camera", "track_id", "second", "n", *VALUES]
    return {name: [r[i] for r in rows] for i, name in enumerate(names)}
