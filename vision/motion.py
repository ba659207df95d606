"""Motion and geometry for the trackers: a constant-velocity Kalman filter of a face box, optimal
one-to-one matching of tracks to faces by box overlap (centre distance where boxes no longer overlap),
and the confirmation rule. Appearance-free: nothing of a face but its box is used.

Boxes are (x, y, w, h) normalised 0-1; time is in seconds, so analysis rates and skipped frames need no
conversion (the filter's noise grows with the time between updates).
"""
from __future__ import annotations

import numpy as np


class BoxKalman:
    """Kalman filter of one box as (cx, cy, w, h) and their rates per second: the centre moves at
    constant velocity, the size drifts (its rate is estimated but not extrapolated: a face box's size
    jitters between detectors and landmarks more than a face grows between two analysed frames).

    Noise scales with the box's height (a face moves and is measured in units of its own size):
    measurement `r` heights, process `q_pos` heights and `q_vel` heights per second, per sqrt(second)."""

    def __init__(self, box: np.ndarray, t: float, r: float = 0.05, q_pos: float = 0.1, q_vel: float = 0.5):
        self.r, self.q_pos, self.q_vel = r, q_pos, q_vel
        z = self._centre(box)
        self.x = np.concatenate([z, np.zeros(4)])
        s = max(z[3], 1e-6)
        self.P = np.diag([(2 * r * s) ** 2] * 4 + [s ** 2] * 4)  # speed unknown: about a height per second
        self.t = float(t)

    @staticmethod
    def _centre(box) -> np.ndarray:
        x, y, w, h = np.asarray(box, np.float64)
        return np.array([x + w / 2, y + h / 2, w, h])

    @property
    def box(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        w, h = max(w, 1e-6), max(h, 1e-6)
        return np.array([cx - w / 2, cy - h / 2, w, h])

    def predict(self, t: float) -> np.ndarray:
        """Move the state on to time t (no-op for t at or before the filter's time); the predicted box."""
        dt = float(t) - self.t
        if dt > 0:
            f = np.eye(8)
            f[0, 4] = f[1, 5] = dt
            s = max(self.x[3], 1e-6)
            q = np.diag([(self.q_pos * s) ** 2] * 4 + [(self.q_vel * s) ** 2] * 4) * dt
            self.x = f @ self.x
            self.P = f @ self.P @ f.T + q
            self.t = float(t)
        return self.box

    def update(self, box: np.ndarray) -> np.ndarray:
        """Correct with a measured box (at the filter's current time); the corrected box."""
        z = self._centre(box)
        s = max(z[3], 1e-6)
        h = np.eye(4, 8)
        innovation = z - h @ self.x
        cov = h @ self.P @ h.T + np.eye(4) * (self.r * s) ** 2
        gain = self.P @ h.T @ np.linalg.inv(cov)
        self.x = self.x + gain @ innovation
        self.P = (np.eye(8) - gain @ h) @ self.P
        return self.box


def match(tracks: np.ndarray, faces: np.ndarray, min_iou: float, max_jump: float) -> list[tuple[int, int]]:
    """Pairs (track, face) of [N,4] and [M,4] boxes, each used at most once, maximising overlap (Hungarian
    assignment). A pair is allowed when its IoU is at least `min_iou`, or its centres are at most
    `max_jump` box sizes apart (a face that moved further than its size between two analysed frames);
    overlapping pairs always cost less than distant ones."""
    from .tracker import centre_distance, iou_matrix

    if len(tracks) == 0 or len(faces) == 0:
        return []
    iou, dist = iou_matrix(tracks, faces), centre_distance(tracks, faces)
    allowed = (iou >= min_iou) | (dist <= max_jump)
    if not allowed.any():
        return []
    cost = np.where(iou >= min_iou, 1.0 - iou, 1.0 + dist)
    cost = np.where(allowed, cost, 1e6)
    if min(cost.shape) == 1:  # one track or one face: the assignment is the cheapest pair (no scipy import)
        r, c = np.unravel_index(np.argmin(cost), cost.shape)
        return [(int(r), int(c))] if allowed[r, c] else []
    from scipy.optimize import linear_sum_assignment  # 0.3 s to import: only where there is a choice

    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]


def confirmed(hits: list[float], t: float, min_hits: int, within_s: float) -> bool:
    """A track is confirmed once it was seen in at least `min_hits` analysed frames within `within_s`
    seconds (hits: the times it was seen)."""
    return sum(1 for h in hits if t - h <= within_s + 1e-9) >= min_hits


def check_confirmation(min_hits: int, within_s: float) -> None:
    if min_hits < 1:
        raise ValueError("confirm_hits must be >= 1 analysed frames")
    if within_s < 0:
        raise ValueError("confirm_within_s must be >= 0 seconds")
