"""Seat-anchored viewer ids for a fixed camera, and opt-out regions.

In a theatre the camera does not move and people stay in their seats: a viewer who looks down, turns to
a neighbour or is hidden for a few seconds is still the same viewer. `SeatTracker` anchors ids to
places instead of frame-to-frame motion: each face is assigned to a seat (from a seat map, or a seat
learned where faces keep appearing), the seat keeps its viewer id while it is occupied, and a seat left
empty for longer than `empty_after_s` seconds gives its next face a new id. Same contract as
`FaceTracker`: `update(obs) -> obs`, `reset()`.

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
from .observation import Observation
from .tracker import greedy_match, iou_matrix


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
    box: np.ndarray  # x, y, w, h normalised
    viewer: int  # current viewer id (-1 when none yet)
    last_seen: float  # seconds


class SeatTracker:
    """update(obs) -> obs with seat-anchored viewer ids; reset() forgets seats learned and viewers."""

    def __init__(self, seat_map: SeatMap | None = None, empty_after_s: float = 10.0, learn: bool = True,
                 min_iou: float = 0.2):
        if empty_after_s < 0:
            raise ValueError("empty_after_s must be >= 0 seconds")
        self.seat_map = seat_map or SeatMap()
        self.empty_after_s, self.learn, self.min_iou = empty_after_s, learn, min_iou
        self.reset()

    def reset(self) -> None:
        self._seats = [_Seat(np.array(b, np.float32), -1, -np.inf) for b in self.seat_map.boxes]
        self._next_viewer = 1

    @property
    def seat_ids(self) -> list[str]:
        """Names of the seats: the map's ids, then learned seats as L1, L2, ..."""
        return [self._name(k) for k in range(len(self._seats))]

    def _name(self, k: int) -> str:
        named = len(self.seat_map.ids)
        return self.seat_map.ids[k] if k < named else f"L{k - named + 1}"

    def assign(self, boxes: np.ndarray) -> np.ndarray:
        """Seat index per face (-1: none), without changing any state."""
        seats = np.zeros(len(boxes), np.int64) - 1
        if len(boxes) and self._seats:
            known = np.stack([s.box for s in self._seats])
            # a face belongs to the seat whose region holds its centre best; IoU decides between neighbours
            iou = iou_matrix(known, boxes)
            centre = boxes[:, :2] + boxes[:, 2:] / 2
            inside = ((centre[None, :, 0] >= known[:, None, 0]) & (centre[None, :, 0] <= known[:, None, 0] + known[:, None, 2])
                      & (centre[None, :, 1] >= known[:, None, 1]) & (centre[None, :, 1] <= known[:, None, 1] + known[:, None, 3]))
            score = np.where(inside, iou + 1.0, iou)
            for r, c in greedy_match(score, np.full_like(score, np.inf), self.min_iou, -1.0):
                seats[c] = r
        return seats

    def update(self, obs: Observation) -> Observation:
        seats = self.assign(obs.boxes)
        ids = np.full(len(obs), -1, np.int64)
        names = np.full(len(obs), "", object)
        for i, k in enumerate(seats.tolist()):
            if k < 0:
                if not self.learn:
                    continue  # outside every mapped seat: dropped below
                b = obs.boxes[i]
                grown = np.array([b[0] - 0.25 * b[2], b[1] - 0.25 * b[3], 1.5 * b[2], 1.5 * b[3]], np.float32)
                self._seats.append(_Seat(grown, -1, -np.inf))
                k = len(self._seats) - 1
            seat = self._seats[k]
            if seat.viewer < 0 or obs.t - seat.last_seen > self.empty_after_s:
                seat.viewer = self._next_viewer
                self._next_viewer += 1
            seat.last_seen = obs.t
            ids[i] = seat.viewer
            names[i] = self._name(k)
        obs = obs.replace(track_ids=ids, seats=names)
        return obs if self.learn else obs.select(ids >= 0)
