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

from collections import defaultdict

import numpy as np

from .labels import VALUE_COLUMNS
from .stats import PRESENT, bucket_index, group_sums, mean_ci95, track_means


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
        shape = (len(buckets), len(VALUE_COLUMNS))  # per bucket and value: faces, sum and sum of squares of their means
        k, total, squares = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        for i, b in enumerate(buckets.tolist()):
            rows = per_bucket.get(b)
            if not rows:
                continue
            m = np.stack(rows)
            n_present[i] = len(m)
            n[i] = int(np.isfinite(m[:, ~PRESENT][:, 0]).sum()) if (~PRESENT).any() else len(m)
            for j in range(m.shape[1]):
                col = m[:, j][np.isfinite(m[:, j])]
                k[i, j], total[i, j], squares[i, j] = len(col), col.sum(), (col * col).sum()
        mean, half = mean_ci95(k, total, squares)
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

