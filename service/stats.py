"""Pure functions between observations, stored sufficient statistics and curves."""
from __future__ import annotations

import numpy as np

from vision.curves import group_sums, t_critical_95
from vision.labels import VALUE_COLUMNS

VALUES = VALUE_COLUMNS  # every probability and metric


def track_seconds(cols: dict[str, np.ndarray], content_offset: float = 0.0) -> list[dict]:
    """Observation columns (vision.table) -> one row per (camera, track, second of content time):
    n samples, and sum / sum of squares of every value (`s_<value>`, `q_<value>`)."""
    if len(cols["t"]) == 0:
        return []
    seconds, cameras, tracks, counts, sums, squares = group_sums(cols, 1.0, content_offset)
    rows = []
    for k in range(len(counts)):
        row = {"camera": str(cameras[k]), "track_id": int(tracks[k]), "second": int(seconds[k]), "n": int(counts[k])}
        row.update({f"s_{v}": float(sums[k, j]) for j, v in enumerate(VALUES)})
        row.update({f"q_{v}": float(squares[k, j]) for j, v in enumerate(VALUES)})
        rows.append(row)
    return rows


def curve_points(k: np.ndarray, total: np.ndarray, total_sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket, from k faces and the sum and sum of squares of their means: the mean over faces and
    the Student-t 95% half-width. NaN where there is no mean (k = 0) or no interval (k < 2)."""
    k = np.asarray(k, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(k > 0, total / k, np.nan)
        var = np.maximum((total_sq - k * mean * mean) / (k - 1), 0.0)
        crit = np.array([t_critical_95(int(d)) if d >= 1 else np.nan for d in np.minimum(k - 1, 31)])
        half = np.where(k >= 2, crit * np.sqrt(var / k), np.nan)
    return mean, half


def welch_half_width(ka, sa, qa, kb, sb, qb) -> np.ndarray:
    """95% half-width of mean_a - mean_b from each side's k, sum and sum of squares of face means
    (Welch-Satterthwaite degrees of freedom). NaN where a side has fewer than two faces."""
    ka, kb = np.asarray(ka, np.float64), np.asarray(kb, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        va = np.maximum((qa - sa * sa / ka) / (ka - 1), 0.0) / ka
        vb = np.maximum((qb - sb * sb / kb) / (kb - 1), 0.0) / kb
        df = (va + vb) ** 2 / (va ** 2 / (ka - 1) + vb ** 2 / (kb - 1))
        df = np.where(np.isfinite(df), np.maximum(df, 1.0), 1.0)
        crit = np.array([t_critical_95(int(round(d))) for d in np.minimum(df, 31)])
        return np.where((ka >= 2) & (kb >= 2), crit * np.sqrt(va + vb), np.nan)


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
