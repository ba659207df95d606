"""The statistics of the engine, in one place: used by `curves.csv`, `report.html`, the store and the routes.

- **Sufficient statistics.** Observation rows grouped by (bucket, source, track): sample counts, sums and
  sums of squares of every value (`group_sums`), which add exactly, so curves merge across sources,
  cameras, screenings and segments. `track_seconds` is the per-second batch the service stores, as
  columns (name -> NumPy array) from the frame loop to the database.
- **Intervals.** Faces are the independent units: a bucket's curve is the mean over faces with a Student-t
  95% half-width on k - 1 degrees of freedom (`mean_ci95`, from k and the sum and sum of squares of the
  face means); the difference of two independent audiences has a Welch half-width (`welch_ci95`,
  Welch-Satterthwaite degrees of freedom). Critical values come from `scipy.stats.t`, whatever the degrees
  of freedom (no table, no normal fallback).
- **Norms** (`z_scores`): one screening against the spread of the others, and **moments** (`find_moments`):
  a curve's peaks by prominence.
"""
from __future__ import annotations

import numpy as np

from .labels import PRESENT_COLUMNS, VALUE_COLUMNS

VALUES = VALUE_COLUMNS  # every probability and metric
PRESENT = np.array([c in PRESENT_COLUMNS for c in VALUE_COLUMNS])  # averaged over every present sample
INT_KEYS = ("track_id", "second", "n")
# the columns of the per-track-second batch: n samples, then the sum and the sum of squares of every value
SECOND_KEYS = INT_KEYS + tuple(f"s_{v}" for v in VALUES) + tuple(f"q_{v}" for v in VALUES)


# --- sufficient statistics -------------------------------------------------------------------------------

def bucket_index(t: np.ndarray, bucket: float, content_offset: float) -> np.ndarray:
    """Bucket of each source time on the content timeline (t - content_offset), floor-divided."""
    return np.floor((np.asarray(t, np.float64) - content_offset) / bucket + 1e-9).astype(np.int64)


def read_mask(cols: dict[str, np.ndarray], min_quality: float = 0.0) -> np.ndarray:
    """Rows that carry an expression reading: probabilities present (the face was landmarked) and
    quality at least `min_quality` (rows without a quality, NaN, count as read)."""
    ok = np.isfinite(np.asarray(cols["p_neutral"], np.float64))
    q = np.asarray(cols["quality"], np.float64) if "quality" in cols else np.full(len(ok), np.nan)
    return ok & ~(q < min_quality)


def group_sums(cols: dict[str, np.ndarray], bucket: float = 1.0, content_offset: float = 0.0,
               min_quality: float = 0.0):
    """Observation rows grouped by (bucket, source, track): returns (buckets, sources, tracks, counts,
    read counts, sums [G, V], sums of squares [G, V]) over `VALUE_COLUMNS`. Attention is summed over every
    row (count), every other value over the read rows (`read_mask`, read count); NaN values count as 0.
    The one grouping behind both the analysis's curves and the service's stored statistics."""
    b = bucket_index(cols["t"], bucket, content_offset)
    names, src = np.unique(np.asarray(cols["source"]).astype(str), return_inverse=True)
    keys = np.stack([b, src.reshape(-1), np.asarray(cols["track_id"], np.int64)], axis=1)
    uniq, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    read = read_mask(cols, min_quality)
    values = np.nan_to_num(np.stack([np.asarray(cols[c], np.float64) for c in VALUE_COLUMNS], axis=1), nan=0.0)
    values[~read] *= PRESENT  # an unread row adds only to the present values
    counts = np.bincount(group, minlength=len(uniq))
    read_counts = np.bincount(group, weights=read, minlength=len(uniq)).astype(np.int64)
    sums = np.zeros((len(uniq), values.shape[1]))
    squares = np.zeros_like(sums)
    np.add.at(sums, group, values)
    np.add.at(squares, group, values * values)
    return uniq[:, 0], names[uniq[:, 1]], uniq[:, 2], counts, read_counts, sums, squares


def track_means(counts, read_counts, sums) -> np.ndarray:
    """Per group, the mean of every value: present values over all samples, the others over the read
    samples (NaN where a group has none)."""
    n = np.where(PRESENT, np.asarray(counts, np.float64)[..., None], np.asarray(read_counts, np.float64)[..., None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, sums / np.maximum(n, 1), np.nan)


def track_seconds(cols: dict[str, np.ndarray], content_offset: float = 0.0,
                  min_quality: float = 0.0) -> dict[str, np.ndarray]:
    """One source's observation columns (vision.table) -> its per-(track, second of content time) batch as
    columns (`SECOND_KEYS`: int64 track_id, second, n; float64 `s_<value>`, `q_<value>`): n samples and the
    sum / sum of squares of every value over the samples with an expression read at or above `min_quality`
    (read_mask). The service keeps one count per track-second, so faces present but not read (turned
    away, too small) are not sent: its attention averages over the faces read, while `curves.csv` also
    counts them (`n_present`). Rows are in (second, track) order."""
    read = read_mask(cols, min_quality)
    cols = {k: np.asarray(v)[read] for k, v in cols.items()}
    if len(cols["t"]) == 0:
        return {k: np.zeros(0, np.int64 if k in INT_KEYS else np.float64) for k in SECOND_KEYS}
    seconds, _, tracks, counts, _, sums, squares = group_sums(cols, 1.0, content_offset, min_quality)
    out = {"track_id": tracks.astype(np.int64), "second": seconds.astype(np.int64), "n": counts.astype(np.int64)}
    out.update({f"s_{v}": sums[:, j] for j, v in enumerate(VALUES)})
    out.update({f"q_{v}": squares[:, j] for j, v in enumerate(VALUES)})
    return out


def as_lists(columns: dict[str, np.ndarray]) -> dict[str, list]:
    """Columns as plain Python lists (for JSON: the live spool, the API's JSON form)."""
    return {k: np.asarray(v).tolist() for k, v in columns.items()}


# --- intervals -------------------------------------------------------------------------------------------

def t_critical_95(df) -> np.ndarray | float:
    """Two-sided 95% Student-t critical value for `df` degrees of freedom (any real df >= 1; NaN below),
    from scipy.stats.t (its inverse CDF, scipy.special.stdtrit)."""
    from scipy.special import stdtrit  # what scipy.stats.t.ppf computes, without importing scipy.stats (0.2 s)

    df = np.asarray(df, np.float64)
    unique, where = np.unique(np.where(df >= 1, df, np.nan), return_inverse=True)  # a curve has few distinct df
    with np.errstate(invalid="ignore"):
        crit = stdtrit(unique, 0.975)[where.reshape(df.shape)]
    return float(crit) if crit.ndim == 0 else crit


def mean_ci95(k, total, total_sq) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket, from k faces and the sum and sum of squares of their means: the mean over faces and
    the Student-t 95% half-width on k - 1 degrees of freedom. NaN where there is no mean (k = 0) or no
    interval (k < 2)."""
    k = np.asarray(k, np.float64)
    total, total_sq = np.asarray(total, np.float64), np.asarray(total_sq, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(k > 0, total / k, np.nan)
        var = np.maximum((total_sq - k * mean * mean) / (k - 1), 0.0)
        half = np.where(k >= 2, t_critical_95(k - 1) * np.sqrt(var / k), np.nan)
    return mean, half


def welch_df(va, ka, vb, kb) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom from each side's squared standard error (var / k) and size."""
    va, vb = np.asarray(va, np.float64), np.asarray(vb, np.float64)
    ka, kb = np.asarray(ka, np.float64), np.asarray(kb, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (va + vb) ** 2 / (va ** 2 / (ka - 1) + vb ** 2 / (kb - 1))


def welch_ci95(ka, sa, qa, kb, sb, qb) -> np.ndarray:
    """95% half-width of mean_a - mean_b from each side's k, sum and sum of squares of face means, on
    Welch-Satterthwaite degrees of freedom (as scipy.stats.ttest_ind(equal_var=False)). NaN where a side
    has fewer than two faces; 0 where both sides are constant."""
    ka, kb = np.asarray(ka, np.float64), np.asarray(kb, np.float64)
    sa, qa, sb, qb = (np.asarray(a, np.float64) for a in (sa, qa, sb, qb))
    with np.errstate(invalid="ignore", divide="ignore"):
        va = np.maximum((qa - sa * sa / ka) / (ka - 1), 0.0) / ka
        vb = np.maximum((qb - sb * sb / kb) / (kb - 1), 0.0) / kb
        se = np.sqrt(va + vb)
        half = np.where(se > 0, t_critical_95(welch_df(va, ka, vb, kb)) * se, 0.0)
    return np.where((ka >= 2) & (kb >= 2), half, np.nan)


# --- norms and moments -----------------------------------------------------------------------------------

def z_scores(own: dict[int, float], others: list[dict[int, float]]) -> dict[str, list]:
    """One screening against the others, per second it has: the others' mean and SD across screenings
    (ddof 1; None with fewer than two) and z = (own - mean) / SD (None without an SD or where it is 0).
    Seconds no other screening has are left out. Columns t, value, norm_mean, norm_sd, z."""
    out = {"t": [], "value": [], "norm_mean": [], "norm_sd": [], "z": []}
    for second in sorted(own):
        values = [o[second] for o in others if second in o]
        if not values:
            continue
        mu = sum(values) / len(values)
        sd = (sum((v - mu) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else None
        out["t"].append(float(second))
        out["value"].append(own[second])
        out["norm_mean"].append(mu)
        out["norm_sd"].append(sd)
        out["z"].append((own[second] - mu) / sd if sd else None)
    return out


def find_moments(t: np.ndarray, y: np.ndarray, top: int) -> list[dict]:
    """The `top` peaks of a curve by prominence (height above the higher of the lowest points that separate
    it from higher ground on either side), each with its extent at half prominence. NaN = no data."""
    t, y = np.asarray(t, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    n = len(y)
    peaks = [i for i in range(n) if (i == 0 or y[i] > y[i - 1]) and (i == n - 1 or y[i] >= y[i + 1])]
    out = []
    for i in peaks:
        left_min = right_min = y[i]
        j = i - 1
        while j >= 0 and y[j] <= y[i]:
            left_min = min(left_min, y[j])
            j -= 1
        reached_left = j < 0
        j = i + 1
        while j < n and y[j] <= y[i]:
            right_min = min(right_min, y[j])
            j += 1
        reached_right = j >= n
        # an edge with no higher ground beyond it does not bound the peak
        bases = [m for m, edge in ((left_min, reached_left), (right_min, reached_right)) if not edge] or \
                [min(left_min, right_min)]
        prominence = y[i] - max(bases)
        if prominence <= 0:
            continue
        half = y[i] - prominence / 2
        lo = i
        while lo > 0 and y[lo - 1] >= half:
            lo -= 1
        hi = i
        while hi < n - 1 and y[hi + 1] >= half:
            hi += 1
        step = float(np.median(np.diff(t))) if n > 1 else 1.0
        out.append({"t": float(t[i]), "value": float(y[i]), "prominence": float(prominence),
                    "start": float(t[lo]), "end": float(t[hi] + step), "duration_s": float(t[hi] + step - t[lo])})
    out.sort(key=lambda m: -m["prominence"])
    return out[:top]
