"""Anonymous per-session track ids for the faces of one source.

`FaceTracker.update(obs) -> obs` gives every face a track id that stays the same while the face stays,
matching boxes frame to frame (greedy on IoU, with a centre-distance fallback for low analysis rates).
A track not matched for more than `max_lost_s` seconds ends; a face seen after that gets a new id.
Ids are small integers counted per tracker instance, from 1: they identify nobody.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .observation import Observation


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between [N,4] and [M,4] boxes given as (x, y, w, h)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0][:, None], b[:, 0][None]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1][:, None], b[:, 1][None]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between box centres in units of the mean of the two boxes' sizes, [N,M]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ca, cb = a[:, :2] + a[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    d = np.linalg.norm(ca[:, None] - cb[None], axis=2)
    size = (a[:, 2:].max(axis=1)[:, None] + b[:, 2:].max(axis=1)[None]) / 2
    return d / np.maximum(size, 1e-9)


def greedy_match(iou: np.ndarray, dist: np.ndarray, min_iou: float, max_jump: float) -> list[tuple[int, int]]:
    """Pairs (track, detection): best IoU first, then nearest; each side used at most once."""
    rows, cols = np.nonzero((iou >= min_iou) | (dist <= max_jump))
    order = np.lexsort((dist[rows, cols], -iou[rows, cols]))
    used_r, used_c, pairs = set(), set(), []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


@dataclass(frozen=True)
class _Track:
    track_id: int
    box: np.ndarray
    last_t: float


class FaceTracker:
    """update(obs) -> obs with track_ids; reset() forgets every track and restarts ids at 1."""

    def __init__(self, max_lost_s: float = 1.0, min_iou: float = 0.2, max_jump: float = 0.6):
        if max_lost_s < 0:
            raise ValueError("max_lost_s must be >= 0 seconds")
        if not 0 < min_iou <= 1:
            raise ValueError("min_iou must be within (0, 1]")
        if max_jump < 0:
            raise ValueError("max_jump must be >= 0 (box sizes)")
        self.max_lost_s, self.min_iou, self.max_jump = max_lost_s, min_iou, max_jump
        self.reset()

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        self._next_id = 1
        self.ended: list[int] = []  # ids of tracks that ended, in order

    def update(self, obs: Observation) -> Observation:
        expired = {tr.track_id for tr in self._tracks if obs.t - tr.last_t > self.max_lost_s + 1e-9}
        self.ended.extend(sorted(expired))
        self._tracks = [tr for tr in self._tracks if tr.track_id not in expired]
        ids = np.full(len(obs), -1, np.int64)
        if self._tracks and len(obs):
            old = np.stack([tr.box for tr in self._tracks])
            for r, c in greedy_match(iou_matrix(old, obs.boxes), centre_distance(old, obs.boxes),
                                     self.min_iou, self.max_jump):
                ids[c] = self._tracks[r].track_id
        by_id = {tr.track_id: tr for tr in self._tracks}
        for i in range(len(obs)):
            if ids[i] < 0:
                ids[i] = self._next_id
                self._next_id += 1
            by_id[int(ids[i])] = _Track(int(ids[i]), np.array(obs.boxes[i]), obs.t)
        self._tracks = list(by_id.values())
        return obs.replace(track_ids=ids)
