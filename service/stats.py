"""Pure functions between observations, stored sufficient statistics and curves."""
from __future__ import annotations

import numpy as np

from vision.curves import find_moments, group_sums, read_mask, t_critical_95  # noqa: F401 - find_moments is part of this API
from vision.labels import VALUE_COLUMNS

VALUES = VALUE_COLUMNS  # every probability and metric


def track_seconds(cols: dict[str, np.ndarray], content_offset: float = 0.0, min_quality: float = 0.0) -> list[dict]:
    """Observation columns (vision.table) -> one row per (camera, track, second of content time):
    n samples, and sum / sum of squares of every value (`s_<value>`, `q_<value>`), over the samples with
    an expression read at or above `min_quality` (vision.curves.read_mask). The service keeps one count
    per track-second, so faces present but not read (turned away, too small) are not sent: its attention
    averages over the faces read, while `curves.csv` also counts them (`n_present`)."""
    read = read_mask(cols, min_quality)
    cols = {k: np.asarray(v)[read] for k, v in cols.items()}
    if len(cols["t"]) == 0:
        return []
    seconds, cameras, tracks, counts, _, sums, squares = group_sums(cols, 1.0, content_offset, min_quality)
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
