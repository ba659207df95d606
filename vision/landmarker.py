"""MediaPipe Face Landmarker, wrapped once: explicit model path, explicit running mode, closed deterministically.

`Landmarker.detect(frame)` returns an `Observation` with boxes, landmarks, blendshapes and facial
transformation matrices for every face found. Video mode takes its timestamps from the capture; image
mode pads each still with a black border first (it halves the no-face rate on tight portrait crops) and
maps the landmarks back to the original image.
"""
from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .capture import Frame
from .observation import N_BLENDSHAPES, N_LANDMARKS, Observation


@dataclass(frozen=True)
class LandmarkerOptions:
    model_path: Path
    mode: str = "video"  # "video" (timestamps must increase) or "image" (independent stills)
    max_faces: int = 8
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    image_padding: float = 0.25  # image mode: black border, as a fraction of the larger side

    def __post_init__(self):
        if self.mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', not {self.mode!r}")
        if self.max_faces < 1:
            raise ValueError("max_faces must be >= 1")
        if not 0 <= self.image_padding <= 2:
            raise ValueError("image_padding must be within 0..2")


def result_to_arrays(result, n_landmarks: int = N_LANDMARKS):
    """MediaPipe FaceLandmarkerResult -> (landmarks [N,478,3], blendshapes [N,52], matrices [N,4,4])."""
    faces = result.face_landmarks or []
    n = len(faces)
    landmarks = np.zeros((n, n_landmarks, 3), np.float32)
    blendshapes = np.zeros((n, N_BLENDSHAPES), np.float32)
    matrices = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    xyz = operator.attrgetter("x", "y", "z")
    for i, face in enumerate(faces):
        landmarks[i] = np.fromiter(itertools.chain.from_iterable(map(xyz, face[:n_landmarks])), np.float32,
                                   count=3 * n_landmarks).reshape(n_landmarks, 3)
        if result.face_blendshapes:
            blendshapes[i] = [c.score for c in result.face_blendshapes[i][:N_BLENDSHAPES]]
        if result.facial_transformation_matrixes:
            matrices[i] = np.asarray(result.facial_transformation_matrixes[i], np.float32)
    return landmarks, blendshapes, matrices


def boxes_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """[N,478,3] normalised landmarks -> [N,4] boxes (x, y, w, h), clipped to the frame."""
    if len(landmarks) == 0:
        return np.zeros((0, 4), np.float32)
    xy = landmarks[:, :, :2]
    boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1).clip(0, 1).astype(np.float32)
    boxes[:, 2:] -= boxes[:, :2]
    return boxes


class Faces(NamedTuple):
    """What a front end found on one frame, row i = face i. The first three fields are what
    `Landmarker.landmark` returns; a front end with a detector adds the rest: boxes [N,4] (x, y, w, h,
    0-1; for a readable face the landmarks' box), det_score [N] (NaN: none), presence [N] (NaN: none),
    readable [N] (False: found, not landmarked; its landmarks, blendshapes and matrices are zeros)."""

    landmarks: np.ndarray
    blendshapes: np.ndarray
    matrices: np.ndarray
    boxes: np.ndarray
    det_score: np.ndarray
    presence: np.ndarray
    readable: np.ndarray


def to_observations(frames: list[Frame], results: list[tuple]) -> list[Observation]:
    """Frames and their front end's results (`Landmarker.landmark`'s three arrays, or `Faces`) ->
    Observations; boxes of plain landmark results computed in one pass."""
    plain = [r for r in results if not isinstance(r, Faces)]
    counts = [len(r[0]) for r in plain]
    boxes = boxes_from_landmarks(np.concatenate([r[0] for r in plain])) if sum(counts) else None
    out, start = [], 0
    for frame, result in zip(frames, results):
        h, w = frame.image.shape[:2]
        if isinstance(result, Faces):
            out.append(Observation(frame.source, frame.index, frame.t, w, h, boxes=result.boxes,
                                   landmarks=result.landmarks, blendshapes=result.blendshapes,
                                   matrices=result.matrices, det_score=result.det_score,
                                   presence=result.presence, readable=result.readable))
            continue
        landmarks, blendshapes, matrices = result
        n = len(landmarks)
        box = boxes[start:start + n].copy() if n else np.zeros((0, 4), np.float32)
        out.append(Observation(frame.source, frame.index, frame.t, w, h, boxes=box, landmarks=landmarks,
                               blendshapes=blendshapes, matrices=matrices))
        start += n
    return out


class Landmarker:
    """Context manager around `mediapipe.tasks.python.vision.FaceLandmarker`."""

    def __init__(self, options: LandmarkerOptions):
        from mediapipe.tasks.python import BaseOptions, vision

        self.options = options
        mode = vision.RunningMode.VIDEO if options.mode == "video" else vision.RunningMode.IMAGE
        mp_options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(options.model_path)),
            running_mode=mode,
            num_faces=options.max_faces,
            min_face_detection_confidence=options.min_detection_confidence,
            min_face_presence_confidence=options.min_presence_confidence,
            min_tracking_confidence=options.min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._task = vision.FaceLandmarker.create_from_options(mp_options)
        self._last_ms = -1

    def detect(self, frame: Frame) -> Observation:
        """One frame -> its Observation (boxes, landmarks, blendshapes, matrices)."""
        return to_observations([frame], [self.landmark(frame)])[0]

    def landmark(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame -> (landmarks [N,478,3], blendshapes [N,52], matrices [N,4,4]); see to_observations."""
        import mediapipe as mp

        h, w = frame.image.shape[:2]
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        pad = 0
        if self.options.mode == "image" and self.options.image_padding > 0:
            pad = int(round(self.options.image_padding * max(h, w)))
            rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        if self.options.mode == "video":
            ms = max(int(round(frame.t * 1000)), self._last_ms + 1)  # MediaPipe needs strictly increasing
            self._last_ms = ms
            result = self._task.detect_for_video(image, ms)
        else:
            result = self._task.detect(image)
        landmarks, blendshapes, matrices = result_to_arrays(result)
        if pad:
            scale = np.array([(w + 2 * pad) / w, (h + 2 * pad) / h, (w + 2 * pad) / w], np.float32)
            offset = np.array([pad / w, pad / h, 0], np.float32)
            landmarks = landmarks * scale - offset
        return landmarks, blendshapes, matrices

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
