"""Seat-anchored viewer ids for a fixed camera, and opt-out regions.

In a theatre the camera does not move and people stay in their seats: a viewer who looks down, turns to
a neighbour or is hidden for a few seconds is still the same viewer. `SeatTracker` anchors ids to
places instead of frame-to-frame motion alone: each face is assigned to a seat (from a seat map, or a
seat learned where faces keep appearing), the seat keeps its viewer id while it is occupied, and a seat
left empty for longer than `empty_after_s` seconds gives its next face a new id. Same contract as
`FaceTracker`: `update(obs) -> obs`, `reset()`.

Association, per analysed frame (geometry only, `vision.motion`):
1. seats whose occupant was seen within `max_lost_s` take the face their occupant's predicted box
   (constant-velocity Kalman filter) overlaps best: confident faces first, then less confident ones
   (ByteTrack's two stages; a less confident face that continues no seat is dropped);
2. faces left over go to the seat whose region holds them (a viewer back after being hidden);
3. tentative seats (learned from fewer than `confirm_hits` sightings within `confirm_within_s`) take
   what is left, and any face left after that starts a tentative seat. Faces of tentative seats are
   dropped; on the first frame after a reset every confident face confirms its seat at once.
A learned seat follows its occupant slowly: its region moves towards the face it holds with time
constant `follow_s` seconds, so a slow zoom, a lean or a laugh keeps the id. A seat map's seats stay put.

A seat map is JSON with boxes normalised 0-1 (x, y, w, h: top-left corner and size):
    {"seats": [{"id": "A1", "box": [0.10, 0.40, 0.05, 0.09]}, ...],
     "excluded": [[0.80, 0.30, 0.20, 0.40]]}
Excluded regions (opt-out seats) are blacked out before any model sees the frame (`mask_excluded`).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .capture import Frame
from .errors import AudienceError
from .motion import BoxKalman, check_confirmation, confirmed, match
from .observation import Observation
from .tracker import face_scores, greedy_match, iou_matrix


@dataclass(frozen=True)
class SeatMap:
    ids: tuple[str, ...] = ()
    boxes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.float32))
    excluded: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.float32))

    @classmethod
    def load(cls, path: str | Path) -> "SeatMap":
        """Read and check a seat map; raises AudienceError with a one-line reason."""
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise AudienceError(f"{path}: cannot read seat map ({exc.strerror})") from None
        except ValueError as exc:
            raise AudienceError(f"{path}: seat map is not valid JSON ({exc})") from None
        try:
            seats = data.get("seats", [])
            ids = tuple(str(s["id"]) for s in seats)
            boxes = np.array([s["box"] for s in seats], np.float32).reshape(-1, 4)
            excluded = np.array(data.get("excluded", []), np.float32).reshape(-1, 4)
        except (AttributeError, KeyError, TypeError, ValueError):
            raise AudienceError(f"{path}: seat map must be {{\"seats\": [{{\"id\": ..., \"box\": [x, y, w, h]}}], "
                                f"\"excluded\": [[x, y, w, h]]}}") from None
        for name, b in (("seat", boxes), ("excluded region", excluded)):
            if len(b) and ((b < 0).any() or (b[:, :2] + b[:, 2:] > 1.0001).any() or (b[:, 2:] <= 0).any()):
                raise AudienceError(f"{path}: every {name} box must lie within the frame (0-1, positive size)")
        if len(set(ids)) != len(ids):
            raise AudienceError(f"{path}: seat ids must be unique")
        return cls(ids, boxes, excluded)


def mask_excluded(frame: Frame, excluded: np.ndarray) -> Frame:
    """The frame with every excluded region painted black (a copy; the input is left as it was)."""
    if len(excluded) == 0:
        return frame
    image = frame.image.copy()
    h, w = image.shape[:2]
    for x, y, bw, bh in excluded:
        image[int(np.floor(y * h)):int(np.ceil((y + bh) * h)), int(np.floor(x * w)):int(np.ceil((x + bw) * w))] = 0
    return dataclasses.replace(frame, image=image)


@dataclass
class _Seat:
    box: np.ndarray  # x, y, w, h normalised: the seat's region (1.5x its occupant's face)
    viewer: int  # current viewer id (-1 when none yet)
    last_seen: float  # seconds
    mapped: bool = False  # from a seat map: never moves
    kalman: BoxKalman | None = None  # the occupant's face box in motion (None: not seen recently)
    hits: list = dataclasses.field(default_factory=list)  # times seen while tentative


def _grown(face: np.ndarray) -> np.ndarray:
    """A seat's region for a face: 1.5 times the face, centred on it."""
    x, y, w, h = face
    return np.array([x - 0.25 * w, y - 0.25 * h, 1.5 * w, 1.5 * h], np.float32)


class SeatTracker:
    """update(obs) -> obs with seat-anchored viewer ids; reset() forgets seats learned and viewers."""

    def __init__(self, seat_map: SeatMap | None = None, empty_after_s: float = 10.0, learn: bool = True,
                 min_iou: float = 0.2, max_lost_s: float = 1.0, max_jump: float = 1.0, follow_s: float = 2.0,
                 confirm_hits: int = 2, confirm_within_s: float = 1.0, high_score: float = 0.9):
        if empty_after_s < 0:
            raise ValueError("empty_after_s must be >= 0 seconds")
        if max_lost_s < 0:
            raise ValueError("max_lost_s must be >= 0 seconds")
        if follow_s < 0:
            raise ValueError("follow_s must be >= 0 seconds")
        if max_jump < 0:
            raise ValueError("max_jump must be >= 0 (box sizes)")
        check_confirmation(confirm_hits, confirm_within_s)
        self.seat_map = seat_map or SeatMap()
        self.empty_after_s, self.learn, self.min_iou = empty_after_s, learn, min_iou
        self.max_lost_s, self.max_jump, self.follow_s = max_lost_s, max_jump, follow_s
        self.confirm_hits, self.confirm_within_s, self.high_score = confirm_hits, confirm_within_s, high_score
        self.reset()

    def reset(self) -> None:
        self._seats = [_Seat(np.array(b, np.float32), -1, -np.inf, mapped=True) for b in self.seat_map.boxes]
        self._tentative: list[_Seat] = []
        self._next_viewer = 1
        self._first = True

    @property
    def seat_ids(self) -> list[str]:
        """Names of the seats: the map's ids, then learned seats as L1, L2, ..."""
        return [self._name(k) for k in range(len(self._seats))]

    def _name(self, k: int) -> str:
        named = len(self.seat_map.ids)
        return self.seat_map.ids[k] if k < named else f"L{k - named + 1}"

    def assign(self, boxes: np.ndarray, seats: list[int] | None = None) -> np.ndarray:
        """Seat index per face (-1: none) by region alone, among `seats` (default all), without changing
        any state: a face belongs to the seat whose region holds its centre best; IoU decides between
        neighbours."""
        out = np.zeros(len(boxes), np.int64) - 1
        pool = list(range(len(self._seats))) if seats is None else list(seats)
        if len(boxes) and pool:
            known = np.stack([self._seats[k].box for k in pool])
            iou = iou_matrix(known, boxes)
            centre = boxes[:, :2] + boxes[:, 2:] / 2
            inside = ((centre[None, :, 0] >= known[:, None, 0]) & (centre[None, :, 0] <= known[:, None, 0] + known[:, None, 2])
                      & (centre[None, :, 1] >= known[:, None, 1]) & (centre[None, :, 1] <= known[:, None, 1] + known[:, None, 3]))
            score = np.where(inside, iou + 1.0, iou)
            for r, c in greedy_match(score, np.full_like(score, np.inf), self.min_iou, -1.0):
                out[c] = pool[r]
        return out

    def update(self, obs: Observation) -> Observation:
        t = obs.t
        boxes = obs.boxes
        high = face_scores(obs) >= self.high_score
        seat_of = np.full(len(obs), -1, np.int64)
        # 1. motion: seats whose occupant was seen lately, predicted to now; confident faces, then the rest
        moving = [k for k, s in enumerate(self._seats) if s.kalman is not None and t - s.last_seen <= self.max_lost_s + 1e-9]
        predicted = np.array([self._seats[k].kalman.predict(t) for k in moving]).reshape(-1, 4)
        free = list(range(len(moving)))
        for faces in (high, ~high):
            idx = np.nonzero(faces & (seat_of < 0))[0]
            for r, c in match(predicted[free], boxes[idx], self.min_iou, self.max_jump):
                seat_of[idx[c]] = moving[free[r]]
            taken = set(seat_of[seat_of >= 0].tolist())
            free = [j for j in free if moving[j] not in taken]
        # 2. place: confident faces left over, into the seats not yet taken
        idx = np.nonzero(high & (seat_of < 0))[0]
        if len(idx):
            taken = set(seat_of[seat_of >= 0].tolist())
            seat_of[idx] = self.assign(boxes[idx], [k for k in range(len(self._seats)) if k not in taken])
        # 3. tentative seats, then new ones
        tentative_of = np.full(len(obs), -1, np.int64)
        if self.learn:
            idx = np.nonzero(high & (seat_of < 0))[0]
            if self._tentative and len(idx):
                for s in self._tentative:
                    s.kalman.predict(t)
                pred = np.stack([s.kalman.box for s in self._tentative])
                for r, c in match(pred, boxes[idx], self.min_iou, self.max_jump):
                    tentative_of[idx[c]] = r
            for i in np.nonzero(high & (seat_of < 0) & (tentative_of < 0))[0]:
                self._tentative.append(_Seat(_grown(boxes[i]), -1, t, kalman=BoxKalman(boxes[i], t)))
                tentative_of[i] = len(self._tentative) - 1
            for i in np.nonzero(tentative_of >= 0)[0]:
                s = self._tentative[tentative_of[i]]
                s.hits.append(t)
                if self._first or confirmed(s.hits, t, self.confirm_hits, self.confirm_within_s):
                    self._seats.append(s)
                    seat_of[i] = len(self._seats) - 1
                    s.last_seen = s.hits[-2] if len(s.hits) > 1 else -np.inf  # seen below, as a confirmed seat
                else:
                    s.kalman.update(boxes[i])
                    s.box = _grown(boxes[i])
            promoted = {id(self._seats[k]) for k in seat_of[seat_of >= 0].tolist()}
            self._tentative = [s for s in self._tentative if id(s) not in promoted
                               and t - s.hits[0] <= self.confirm_within_s + 1e-9]
        self._first = False
        ids = np.full(len(obs), -1, np.int64)
        names = np.full(len(obs), "", object)
        for i, k in enumerate(seat_of.tolist()):
            if k < 0:
                continue
            seat = self._seats[k]
            if seat.viewer < 0 or t - seat.last_seen > self.empty_after_s:
                seat.viewer = self._next_viewer
                self._next_viewer += 1
            self._see(seat, boxes[i], t)
            ids[i] = seat.viewer
            names[i] = self._name(k)
        keep = ids >= 0
        out = obs.replace(track_ids=ids, seats=names)
        return out if keep.all() else out.select(keep)

    def _see(self, seat: _Seat, face: np.ndarray, t: float) -> None:
        """The seat's occupant seen at `face`: its motion filter corrected (or started again after an
        absence), and a learned seat's region moved towards the face with time constant `follow_s`."""
        if seat.kalman is None or t - seat.last_seen > self.max_lost_s + 1e-9:
            seat.kalman = BoxKalman(face, t)
        else:
            seat.kalman.update(face)
        if not seat.mapped:
            dt = t - seat.last_seen
            a = 1.0 if not np.isfinite(dt) or self.follow_s == 0 else 1.0 - np.exp(-dt / self.follow_s)
            seat.box = (seat.box + a * (_grown(face) - seat.box)).astype(np.float32)
        seat.last_seen = t
