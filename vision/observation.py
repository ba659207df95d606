"""The one per-frame value that flows landmarker -> classifier -> describe -> tracker -> sinks.

`Observation` is a frozen struct of arrays: row i of every array is face i of the frame. Stages never
mutate it; they return a new one with `Observation.replace(...)`. Arrays are made read-only on creation
(a fresh array handed in is taken over, not copied: the stage that made it must not write to it again).

Landmarks live only in memory (the classifier and geometry need them); sinks write the numbers named in
`vision.labels.VALUE_COLUMNS` plus the box and track id, never landmarks, crops or pixels.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .labels import EMOTIONS, METRICS

N_LANDMARKS = 478
N_BLENDSHAPES = 52

# (name, per-face shape, dtype, fill value used when a stage has not produced it yet)
_FIELDS = {
    "boxes": ((4,), np.float32, 0.0),
    "landmarks": ((N_LANDMARKS, 3), np.float32, 0.0),
    "blendshapes": ((N_BLENDSHAPES,), np.float32, 0.0),
    "matrices": ((4, 4), np.float32, 0.0),
    "probs": ((len(EMOTIONS),), np.float32, np.nan),
    "labels": ((), np.int64, -1),
    "metrics": ((len(METRICS),), np.float32, np.nan),
    "valence": ((), np.float32, np.nan),
    "pose": ((3,), np.float32, np.nan),
    "attention": ((), np.float32, np.nan),
    "track_ids": ((), np.int64, -1),
    "seats": ((), object, ""),
    "det_score": ((), np.float32, np.nan),
    "presence": ((), np.float32, np.nan),
    "readable": ((), np.bool_, True),
    "quality": ((), np.float32, np.nan),
}


_META = ("source", "frame", "t", "width", "height")


def _checked(name: str, value, n: int, spec) -> np.ndarray:
    shape, dtype, fill = spec
    value = np.full((n, *shape), fill, dtype) if value is None else np.asarray(value, dtype)
    if value.shape != (n, *shape):
        raise ValueError(f"Observation.{name} has shape {value.shape}, expected {(n, *shape)}")
    return _frozen(value)


def _frozen(a: np.ndarray) -> np.ndarray:
    """Read-only array: already read-only as is; a fresh array owning its data is taken over (made
    read-only in place, no copy); anything else (a view, a list) is copied first."""
    if not a.flags.writeable:
        return a
    if a.base is not None or not a.flags.owndata:
        a = a.copy()
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Observation:
    """What one analysed frame of one source showed.

    source: input name; frame: index in the source; t: seconds since the source started;
    width/height: frame size in pixels. Per face (N rows): boxes [x, y, w, h] normalised 0-1 by frame
    size (top-left corner and size); landmarks [478, 3] normalised; blendshapes [52]; matrices [4, 4]
    facial transformation; probs [7] in `EMOTIONS` order (calibrated: their mean over faces estimates
    each expression's share); labels: top expression index per face (the classifier's decision, -1 before
    classification); metrics [5] in `METRICS` order; valence -1..1;
    pose [yaw, pitch, roll] degrees; attention 0-1; track_ids (-1 before tracking); seats: the seat a
    face was assigned to (a seat map's id, or L<n> for a learned seat; "" without seats);
    det_score: the detector's confidence 0-1 (NaN where no detector scored the face: MediaPipe's own);
    presence: the landmark model's face-presence score 0-1 (NaN where the landmarker gives none);
    readable: False for a face that was found (a box) but could not be landmarked (turned away, covered):
    it has no landmarks, expressions, metrics or pose, and attention 0; quality: 0-1, how far its
    expression can be trusted (`vision.features.face_quality`; NaN before the describe stage).
    """

    source: str
    frame: int
    t: float
    width: int
    height: int
    boxes: np.ndarray = field(default=None)
    landmarks: np.ndarray = field(default=None, repr=False)
    blendshapes: np.ndarray = field(default=None, repr=False)
    matrices: np.ndarray = field(default=None, repr=False)
    probs: np.ndarray = field(default=None)
    labels: np.ndarray = field(default=None)
    metrics: np.ndarray = field(default=None, repr=False)
    valence: np.ndarray = field(default=None, repr=False)
    pose: np.ndarray = field(default=None, repr=False)
    attention: np.ndarray = field(default=None, repr=False)
    track_ids: np.ndarray = field(default=None)
    seats: np.ndarray = field(default=None)
    det_score: np.ndarray = field(default=None, repr=False)
    presence: np.ndarray = field(default=None, repr=False)
    readable: np.ndarray = field(default=None, repr=False)
    quality: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        n = next((len(getattr(self, f)) for f in _FIELDS if getattr(self, f) is not None), 0)
        for name, spec in _FIELDS.items():
            object.__setattr__(self, name, _checked(name, getattr(self, name), n, spec))

    def __len__(self) -> int:
        return len(self.boxes)

    def replace(self, **changes) -> "Observation":
        """A new observation with some fields changed (the input is left as it was). Per-face fields
        must keep the number of faces; `select` changes it."""
        new = object.__new__(Observation)
        new.__dict__.update(self.__dict__)
        n = len(self)
        for name, value in changes.items():
            if name in _FIELDS:
                value = _checked(name, value, n, _FIELDS[name])
            elif name not in _META:
                raise TypeError(f"Observation has no field {name!r}")
            object.__setattr__(new, name, value)
        return new

    def select(self, mask: np.ndarray) -> "Observation":
        """A new observation with only the faces where `mask` (bool or index array) selects."""
        return dataclasses.replace(self, **{name: getattr(self, name)[mask] for name in _FIELDS})

    @property
    def face_px(self) -> np.ndarray:
        """Box height in pixels per face."""
        return (self.boxes[:, 3] * self.height).astype(np.float32)

    @property
    def emotions(self) -> list[str]:
        """Top label per face ("" where no classifier has run)."""
        return [EMOTIONS[i] if i >= 0 else "" for i in self.labels.tolist()]

    @classmethod
    def empty(cls, source: str, frame: int, t: float, width: int, height: int) -> "Observation":
        return cls(source, frame, t, width, height)
