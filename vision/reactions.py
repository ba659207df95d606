"""Readings over time, per viewer: smoothing and each viewer's own baseline ("reaction" values).

A resting face is not a neutral reading: a viewer whose face reads 0.4 disgust at rest adds 0.4 disgust
to every second of the curve. `Reactions` follows each track (source, track id) through time and
  1. smooths its readings, for this reading only, with a causal exponential filter of time constant
     `smooth_s` seconds
     (irregular sampling handled exactly: a sample dt seconds after the last moves the smoothed value a
     share 1 - exp(-dt / smooth_s) of the way; 0 turns smoothing off), and
  2. takes its **baseline**: the median of its smoothed readings over its first `baseline_s` seconds
     (while that opening window is still running, the median of what it has seen so far), and writes
     `<value>_delta` = smoothed reading - baseline for every value in `labels.DELTA_BASES`.
The reading columns themselves stay as read: a curve over many faces already averages their noise out,
and a causal filter would only delay it (by about `smooth_s`).
It is causal, so `audience live` builds baselines as it goes, and it reads rows in time order with its
state kept between calls, so a source analysed at once (`analyze`) and the same source fed second by
second (`live`) give the same numbers. Rows without a track (id -1) or without a reading (NaN) pass
unchanged and get NaN deltas.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .labels import DELTA_BASES, DELTA_COLUMNS


@dataclass(frozen=True)
class ReactionOptions:
    smooth_s: float = 0.5  # time constant of the smoothing filter, seconds (0: raw readings)
    baseline_s: float = 10.0  # each viewer's opening window, seconds, whose median is their baseline

    def __post_init__(self):
        if not (self.smooth_s >= 0 and np.isfinite(self.smooth_s)):
            raise ValueError("smooth_s must be >= 0 seconds")
        if not (self.baseline_s > 0 and np.isfinite(self.baseline_s)):
            raise ValueError("baseline_s must be > 0 seconds")


@dataclass
class _Track:
    first_t: float
    last_t: float
    smoothed: np.ndarray
    opening: list = field(default_factory=list)  # smoothed readings within the opening window
    baseline: np.ndarray | None = None  # frozen once the window has passed


class Reactions:
    """update(cols) -> cols with `<value>_delta` columns; reset() forgets every track."""

    def __init__(self, options: ReactionOptions = ReactionOptions()):
        self.options = options
        self._tracks: dict[tuple[str, int], _Track] = {}

    def reset(self) -> None:
        self._tracks.clear()

    def update(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Table columns (vision.table) of rows in time order -> new columns (the input is not changed)."""
        n = len(cols["t"])
        values = np.stack([np.asarray(cols[c], np.float64) for c in DELTA_BASES], axis=1) if n else \
            np.zeros((0, len(DELTA_BASES)))
        deltas = np.full_like(values, np.nan)
        sources, tracks, times = cols["source"], np.asarray(cols["track_id"]), np.asarray(cols["t"], np.float64)
        for i in range(n):
            if tracks[i] < 0 or not np.isfinite(values[i]).any():
                continue
            deltas[i] = self._step((str(sources[i]), int(tracks[i])), float(times[i]), values[i])
        out = dict(cols)
        for j, c in enumerate(DELTA_COLUMNS):
            out[c] = deltas[:, j].astype(np.float32)
        return out

    def _step(self, key, t: float, x: np.ndarray) -> np.ndarray:
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(t, t, x.copy())
        else:
            dt = max(t - track.last_t, 0.0)
            share = 1.0 if self.options.smooth_s == 0 else -np.expm1(-dt / self.options.smooth_s)
            seen = np.isfinite(x)
            # a value missing before (NaN) starts from the first reading that has it
            track.smoothed = np.where(seen & ~np.isfinite(track.smoothed), x,
                                      np.where(seen, track.smoothed + share * (x - track.smoothed), track.smoothed))
            track.last_t = t
        s = np.where(np.isfinite(x), track.smoothed, np.nan)
        if track.baseline is None:
            if t - track.first_t <= self.options.baseline_s:
                track.opening.append(s)
            else:
                track.baseline, track.opening = _median(track.opening), []
        baseline = track.baseline if track.baseline is not None else _median(track.opening)
        return s - baseline


def _median(rows: list) -> np.ndarray:
    with warnings.catch_warnings():  # a value never read in the window (all NaN): NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(np.asarray(rows), axis=0)
