"""Audience curves: per time bucket, how many faces, and the mean and 95% CI of every value.

Faces, not frames, are the independent units: within a bucket each track's samples are averaged first,
then the curve is the mean over tracks with a Student-t 95% half-width (n - 1 degrees of freedom).
`BucketStats` keeps the per-(bucket, source, track) count and sum, which merge exactly across sources.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .labels import VALUE_COLUMNS

# two-sided 95% Student-t critical values, df 1..30; beyond 30 the normal 1.96 is within 2%
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t_critical_95(df: int) -> float:
    if df < 1:
        return math.nan
    return _T95[df - 1] if df <= len(_T95) else 1.96


def bucket_index(t: np.ndarray, bucket: float, content_offset: float) -> np.ndarray:
    """Bucket of each source time on the content timeline (t - content_offset), floor-divided."""
    return np.floor((np.asarray(t, np.float64) - content_offset) / bucket + 1e-9).astype(np.int64)


def group_sums(cols: dict[str, np.ndarray], bucket: float = 1.0, content_offset: float = 0.0):
    """Observation rows grouped by (bucket, source, track): returns (buckets, sources, tracks, counts,
    sums [G, V], sums of squares [G, V]) over `VALUE_COLUMNS`, NaN values counted as 0. The one grouping
    behind both the analysis's curves and the service's stored statistics."""
    b = bucket_index(cols["t"], bucket, content_offset)
    names, src = np.unique(np.asarray(cols["source"]).astype(str), return_inverse=True)
    keys = np.stack([b, src.reshape(-1), np.asarray(cols["track_id"], np.int64)], axis=1)
    uniq, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    values = np.nan_to_num(np.stack([np.asarray(cols[c], np.float64) for c in VALUE_COLUMNS], axis=1), nan=0.0)
    counts = np.bincount(group, minlength=len(uniq))
    sums = np.zeros((len(uniq), values.shape[1]))
    squares = np.zeros_like(sums)
    np.add.at(sums, group, values)
    np.add.at(squares, group, values * values)
    return uniq[:, 0], names[uniq[:, 1]], uniq[:, 2], counts, sums, squares


class BucketStats:
    """Mergeable sufficient statistics: per (bucket, source, track) sample count and value sums."""

    def __init__(self, bucket: float = 1.0, content_offset: float = 0.0):
        if not bucket > 0:
            raise ValueError("bucket must be > 0 seconds")
        self.bucket, self.content_offset = float(bucket), float(content_offset)
        self._sums: dict[tuple[int, str, int], np.ndarray] = defaultdict(lambda: np.zeros(len(VALUE_COLUMNS)))
        self._counts: dict[tuple[int, str, int], int] = defaultdict(int)
        self.analysed: set[int] = set()  # buckets with at least one analysed frame, with or without faces

    def add_frames(self, t: np.ndarray) -> None:
        """Record analysed frame times (so buckets with no face show n_faces 0, not a gap)."""
        self.analysed.update(bucket_index(t, self.bucket, self.content_offset).tolist())

    def add_rows(self, cols: dict[str, np.ndarray]) -> None:
        """Add table rows (see `vision.table`)."""
        if len(cols["t"]) == 0:
            return
        buckets, sources, tracks, counts, sums, _ = group_sums(cols, self.bucket, self.content_offset)
        for k, key in enumerate(zip(buckets.tolist(), sources.tolist(), tracks.tolist())):
            self._sums[key] += sums[k]
            self._counts[key] += int(counts[k])
        self.analysed.update(buckets.tolist())

    def merge(self, other: "BucketStats") -> None:
        if (other.bucket, other.content_offset) != (self.bucket, self.content_offset):
            raise ValueError("cannot merge statistics with different buckets or offsets")
        for k, s in other._sums.items():
            self._sums[k] += s
            self._counts[k] += other._counts[k]
        self.analysed |= other.analysed

    def curves(self) -> dict[str, np.ndarray]:
        """Columns t, n_faces, then <value> and <value>_ci95 for every value, one row per bucket."""
        if not self.analysed:
            buckets = np.zeros(0, np.int64)
        else:
            buckets = np.arange(min(self.analysed), max(self.analysed) + 1)
        per_bucket: dict[int, list[np.ndarray]] = defaultdict(list)
        for k, s in self._sums.items():
            per_bucket[k[0]].append(s / self._counts[k])
        n = np.zeros(len(buckets), np.int64)
        mean = np.full((len(buckets), len(VALUE_COLUMNS)), np.nan)
        half = np.full_like(mean, np.nan)
        for i, b in enumerate(buckets.tolist()):
            rows = per_bucket.get(b)
            if not rows:
                continue
            m = np.stack(rows)
            n[i] = len(m)
            mean[i] = m.mean(axis=0)
            if len(m) > 1:
                half[i] = t_critical_95(len(m) - 1) * m.std(axis=0, ddof=1) / math.sqrt(len(m))
        out = {"t": buckets * self.bucket, "n_faces": n}
        for j, c in enumerate(VALUE_COLUMNS):
            out[c] = mean[:, j]
            out[f"{c}_ci95"] = half[:, j]
        return out


def write_curves_csv(curves: dict[str, np.ndarray], path) -> None:
    import csv

    names = list(curves)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for i in range(len(curves["t"])):
            w.writerow([("" if v != v else f"{v:.6g}") if isinstance(v, float) else v
                        for v in (curves[c][i].item() for c in names)])


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
