"""Anonymous per-session track ids for the faces of one source.

`FaceTracker.update(obs) -> obs` gives every face a track id that stays the same while the face stays.
Association is ByteTrack's two-stage matching on geometry alone: each track's box is predicted to the
frame's time by a constant-velocity Kalman filter (`vision.motion`), confident faces (detector score at
least `high_score`, or no score) are matched to the tracks first (best overlap, a centre-distance fallback
for low analysis rates), then the less confident faces to the tracks still unmatched; a less confident
face that continues no track is dropped. A new track is confirmed, and gets an id, only once it is seen
in `confirm_hits` analysed frames within `confirm_within_s` seconds; until then its faces are dropped (not
emitted: a face on blurred text for one frame never becomes a viewer), except on the first frame after
a reset, where every confident face is confirmed at once (nothing before it to contradict it). A track
not matched for more than `max_lost_s` seconds ends; a face seen after that gets a new id.
Ids are small integers counted per tracker instance, from 1: they identify nobody.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion import BoxKalman, check_confirmation, confirmed, match
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


@dataclass
class _Track:
    kalman: BoxKalman
    hits: list  # times seen while tentative
    last_t: float
    track_id: int = -1  # -1 while tentative


def face_scores(obs: Observation) -> np.ndarray:
    """Per face, the score the trackers split confident from less confident faces by: the detector's
    score, 1 where no detector scored the face."""
    score = obs.det_score.astype(np.float64)
    return np.where(np.isnan(score), 1.0, score)


class FaceTracker:
    """update(obs) -> obs with track_ids (faces of tentative tracks and unmatched less confident faces
    dropped); reset() forgets every track and restarts ids at 1."""

    def __init__(self, max_lost_s: float = 1.0, min_iou: float = 0.2, max_jump: float = 0.6,
                 confirm_hits: int = 2, confirm_within_s: float = 1.0, high_score: float = 0.9):
        if max_lost_s < 0:
            raise ValueError("max_lost_s must be >= 0 seconds")
        if not 0 < min_iou <= 1:
            raise ValueError("min_iou must be within (0, 1]")
        if max_jump < 0:
            raise ValueError("max_jump must be >= 0 (box sizes)")
        check_confirmation(confirm_hits, confirm_within_s)
        if not 0 <= high_score <= 1:
            raise ValueError("high_score must be within 0..1")
        self.max_lost_s, self.min_iou, self.max_jump = max_lost_s, min_iou, max_jump
        self.confirm_hits, self.confirm_within_s, self.high_score = confirm_hits, confirm_within_s, high_score
        self.reset()

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._first = True
        self.ended: list[int] = []  # ids of tracks that ended, in order

    def update(self, obs: Observation) -> Observation:
        t = obs.t
        alive = []
        for tr in self._tracks:
            if tr.track_id < 0 and t - tr.hits[0] > self.confirm_within_s + 1e-9:
                continue  # never confirmed: forgotten without an id
            if tr.track_id >= 0 and t - tr.last_t > self.max_lost_s + 1e-9:
                self.ended.append(tr.track_id)
                continue
            alive.append(tr)
        self._tracks = alive
        predicted = np.array([tr.kalman.predict(t) for tr in self._tracks]).reshape(-1, 4)
        high = face_scores(obs) >= self.high_score
        track_of = np.full(len(obs), -1, np.int64)  # index into self._tracks
        free_tracks = [k for k, tr in enumerate(self._tracks) if tr.track_id >= 0]
        free_tentative = [k for k, tr in enumerate(self._tracks) if tr.track_id < 0]
        # confirmed tracks: confident faces first, then the less confident ones; then tentative tracks
        for pool, faces in ((free_tracks, high), (free_tracks, ~high), (free_tentative, high)):
            idx = np.nonzero(faces & (track_of < 0))[0] if pool else ()
            if len(idx) == 0:
                continue  # no track or no face left for this pass
            for r, c in match(predicted[pool], obs.boxes[idx], self.min_iou, self.max_jump):
                track_of[idx[c]] = pool[r]
            taken = set(track_of[track_of >= 0].tolist())
            pool[:] = [k for k in pool if k not in taken]
        for i in np.nonzero(high & (track_of < 0))[0]:  # new tentative tracks
            self._tracks.append(_Track(BoxKalman(obs.boxes[i], t), [], t))
            track_of[i] = len(self._tracks) - 1
        ids = np.full(len(obs), -1, np.int64)
        for i, k in enumerate(track_of.tolist()):
            if k < 0:
                continue
            tr = self._tracks[k]
            tr.kalman.update(obs.boxes[i])
            tr.last_t = t
            if tr.track_id < 0:
                tr.hits.append(t)
                if self._first or confirmed(tr.hits, t, self.confirm_hits, self.confirm_within_s):
                    tr.track_id, self._next_id = self._next_id, self._next_id + 1
            ids[i] = tr.track_id
        self._first = False
        keep = ids >= 0
        return obs.replace(track_ids=ids).select(keep) if not keep.all() else obs.replace(track_ids=ids)
