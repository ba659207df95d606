"""Audience curves: per time bucket, how many faces, and the mean and 95% CI of every value.

Faces, not frames, are the independent units: within a bucket each track's samples are averaged first,
then the curve is the mean over tracks with a Student-t 95% half-width (n - 1 degrees of freedom).
`BucketStats` keeps the per-(bucket, source, track) counts and sums, which merge exactly across sources.

Two counts per track: every sample of a present face (`n`), and the samples that carry an expression
reading (`n_read`: the face was landmarked and its quality is at least `min_quality`). Expression values
(probabilities, metrics, valence, head pose) are averaged over the read samples only; attention
(`vision.labels.PRESENT_COLUMNS`) over every present sample, an unreadable face counting 0.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .labels import DEFAULT_MIN_QUALITY, PRESENT_COLUMNS, VALUE_COLUMNS  # noqa: F401 - re-exported
_PRESENT = np.array([c in PRESENT_COLUMNS for c in VALUE_COLUMNS])

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
    values[~read] *= _PRESENT  # an unread row adds only to the present values
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
    n = np.where(_PRESENT, np.asarray(counts, np.float64)[..., None], np.asarray(read_counts, np.float64)[..., None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, sums / np.maximum(n, 1), np.nan)


class BucketStats:
    """Mergeable sufficient statistics: per (bucket, source, track) sample counts and value sums."""

    def __init__(self, bucket: float = 1.0, content_offset: float = 0.0, min_quality: float = 0.0):
        if not bucket > 0:
            raise ValueError("bucket must be > 0 seconds")
        if not 0 <= min_quality <= 1:
            raise ValueError("min_quality must be within 0..1")
        self.bucket, self.content_offset, self.min_quality = float(bucket), float(content_offset), float(min_quality)
        self._sums: dict[tuple[int, str, int], np.ndarray] = defaultdict(lambda: np.zeros(len(VALUE_COLUMNS)))
        self._counts: dict[tuple[int, str, int], np.ndarray] = defaultdict(lambda: np.zeros(2, np.int64))
        self.analysed: set[int] = set()  # buckets with at least one analysed frame, with or without faces

    def add_frames(self, t: np.ndarray) -> None:
        """Record analysed frame times (so buckets with no face show n_faces 0, not a gap)."""
        self.analysed.update(bucket_index(t, self.bucket, self.content_offset).tolist())

    def add_rows(self, cols: dict[str, np.ndarray]) -> None:
        """Add table rows (see `vision.table`)."""
        if len(cols["t"]) == 0:
            return
        buckets, sources, tracks, counts, read, sums, _ = group_sums(cols, self.bucket, self.content_offset,
                                                                     self.min_quality)
        for k, key in enumerate(zip(buckets.tolist(), sources.tolist(), tracks.tolist())):
            self._sums[key] += sums[k]
            self._counts[key] += (int(counts[k]), int(read[k]))
        self.analysed.update(buckets.tolist())

    def merge(self, other: "BucketStats") -> None:
        if (other.bucket, other.content_offset, other.min_quality) != (self.bucket, self.content_offset, self.min_quality):
            raise ValueError("cannot merge statistics with different buckets, offsets or minimum quality")
        for k, s in other._sums.items():
            self._sums[k] += s
            self._counts[k] += other._counts[k]
        self.analysed |= other.analysed

    def coverage(self) -> dict:
        """Present vs read: track-buckets with a present face, and those of them with an expression read."""
        present = len(self._counts)
        read = sum(1 for c in self._counts.values() if c[1] > 0)
        samples = np.sum(list(self._counts.values()), axis=0) if self._counts else np.zeros(2, np.int64)
        return {"min_quality": self.min_quality, "present_track_buckets": present, "read_track_buckets": read,
                "read_share": read / present if present else None, "present_samples": int(samples[0]),
                "read_samples": int(samples[1])}

    def curves(self) -> dict[str, np.ndarray]:
        """Columns t, n_faces (faces with an expression read), n_present (faces present, read or not),
        then <value> and <value>_ci95 for every value, one row per bucket."""
        if not self.analysed:
            buckets = np.zeros(0, np.int64)
        else:
            buckets = np.arange(min(self.analysed), max(self.analysed) + 1)
        per_bucket: dict[int, list[np.ndarray]] = defaultdict(list)
        for k, s in self._sums.items():
            per_bucket[k[0]].append(track_means(self._counts[k][0], self._counts[k][1], s))
        n = np.zeros(len(buckets), np.int64)
        n_present = np.zeros(len(buckets), np.int64)
        mean = np.full((len(buckets), len(VALUE_COLUMNS)), np.nan)
        half = np.full_like(mean, np.nan)
        for i, b in enumerate(buckets.tolist()):
            rows = per_bucket.get(b)
            if not rows:
                continue
            m = np.stack(rows)
            n_present[i] = len(m)
            n[i] = int(np.isfinite(m[:, ~_PRESENT][:, 0]).sum()) if (~_PRESENT).any() else len(m)
            for j in range(m.shape[1]):
                col = m[:, j][np.isfinite(m[:, j])]
                if len(col):
                    mean[i, j] = col.mean()
                if len(col) > 1:
                    half[i, j] = t_critical_95(len(col) - 1) * col.std(ddof=1) / math.sqrt(len(col))
        out = {"t": buckets * self.bucket, "n_faces": n, "n_present": n_present}
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
