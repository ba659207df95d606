"""Audience front end: every face in a wide shot, for MediaPipe's short-range landmarker.

MediaPipe's own detector is built for selfie distance and finds nothing in a wide shot of a theatre.
`AudienceLandmarker` keeps the same contract as `Landmarker.landmark(frame)`, but finds faces with MTCNN
on the whole frame every `detect_every_s` seconds, and between detections follows each face by
re-landmarking a square crop around where it was last (track by crop, as MediaPipe does for one face).
Each crop is 1.8x the face, resized to 256 px, and landmarked in image mode; landmarks are mapped back to
the frame. Faces found twice (a detection and a followed crop) are merged.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .capture import Frame
from .detector import MtcnnDetector, MtcnnOptions, nms
from .landmarker import Landmarker, LandmarkerOptions, boxes_from_landmarks
from .observation import N_BLENDSHAPES, N_LANDMARKS


@dataclass(frozen=True)
class AudienceOptions:
    landmarker_path: Path
    mtcnn: tuple[Path, Path, Path]
    detect_every_s: float = 2.0  # full-frame detection cadence; faces are followed by crop in between
    min_face: int = 32  # pixels, smallest face the detector looks for (a 48 px face gives a ~56 px box)
    crop_scale: float = 1.8  # crop side as a multiple of the face box
    crop_size: int = 256  # pixels the crop is resized to for the landmarker
    max_faces: int = 500
    threads: int = 2  # landmarker instances run side by side on the faces of a frame (crops are independent)
    device: str = "cpu"  # the detector's ONNX device (vision.onnx)

    def __post_init__(self):
        if self.detect_every_s < 0:
            raise ValueError("detect_every_s must be >= 0 seconds")
        if self.crop_scale < 1:
            raise ValueError("crop_scale must be >= 1")
        if self.threads < 1:
            raise ValueError("threads must be >= 1")


def square_regions(boxes_px: np.ndarray, scale: float, width: int, height: int) -> np.ndarray:
    """[N,4] x1,y1,x2,y2 face boxes -> [N,3] (x0, y0, side) square crop regions `scale` times the face."""
    cx, cy = (boxes_px[:, 0] + boxes_px[:, 2]) / 2, (boxes_px[:, 1] + boxes_px[:, 3]) / 2
    side = np.maximum(boxes_px[:, 2] - boxes_px[:, 0], boxes_px[:, 3] - boxes_px[:, 1]) * scale
    return np.stack([cx - side / 2, cy - side / 2, np.maximum(side, 8.0)], axis=1)


def crop_to_frame(landmarks: np.ndarray, region: np.ndarray, crop_size: int, width: int, height: int) -> np.ndarray:
    """Landmarks normalised to a crop -> normalised to the frame (z scales like x, as MediaPipe's does)."""
    x0, y0, side = region
    f = side / crop_size
    out = np.empty_like(landmarks)
    out[..., 0] = (x0 + landmarks[..., 0] * crop_size * f) / width
    out[..., 1] = (y0 + landmarks[..., 1] * crop_size * f) / height
    out[..., 2] = landmarks[..., 2] * crop_size * f / width
    return out


class AudienceLandmarker:
    """landmark(frame) -> (landmarks [N,478,3], blendshapes [N,52], matrices [N,4,4]) for every face."""

    def __init__(self, options: AudienceOptions):
        self.options = options
        self._detector = MtcnnDetector(MtcnnOptions(*options.mtcnn, min_face=options.min_face, threads=options.threads,
                                                   device=options.device))
        self._landmarkers = [Landmarker(LandmarkerOptions(options.landmarker_path, mode="image", max_faces=1,
                                                          image_padding=0.0)) for _ in range(options.threads)]
        self._pool = ThreadPoolExecutor(options.threads) if options.threads > 1 else None
        self._followed = np.zeros((0, 4), np.float32)  # last faces' boxes, x1 y1 x2 y2 pixels
        self._last_detection_t: float | None = None

    def reset(self) -> None:
        self._followed = np.zeros((0, 4), np.float32)
        self._last_detection_t = None

    def _crop(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        x0, y0, side = region
        s = self.options.crop_size / side
        m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
        return cv2.warpAffine(image, m, (self.options.crop_size, self.options.crop_size),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def landmark(self, frame: Frame):
        h, w = frame.image.shape[:2]
        boxes = self._followed
        due = self._last_detection_t is None or frame.t - self._last_detection_t >= self.options.detect_every_s
        if due:  # followed faces win over fresh detections of the same face (they keep their place)
            detected, scores = self._detector.detect(frame.image)
            self._last_detection_t = frame.t
            candidates = np.concatenate([boxes, detected])
            priority = np.concatenate([np.full(len(boxes), 2.0), scores])
            boxes = candidates[np.sort(nms(candidates, priority, 0.3))]
        regions = square_regions(boxes, self.options.crop_scale, w, h)[: self.options.max_faces]
        chunks = [(k, regions[k::len(self._landmarkers)]) for k in range(len(self._landmarkers))]
        run = (lambda c: self._landmark_regions(frame, *c))
        results = list(self._pool.map(run, chunks)) if self._pool and len(regions) > 1 else [run(c) for c in chunks]
        # back in region order, so the output does not depend on the number of threads
        found = [r for _, r in sorted(((i * len(chunks) + k, r) for k, rs in enumerate(results)
                                       for i, r in enumerate(rs)), key=lambda x: x[0]) if r is not None]
        if not found:
            self._followed = np.zeros((0, 4), np.float32)
            return (np.zeros((0, N_LANDMARKS, 3), np.float32), np.zeros((0, N_BLENDSHAPES), np.float32),
                    np.zeros((0, 4, 4), np.float32))
        landmarks = np.concatenate([f[0] for f in found])
        blendshapes = np.concatenate([f[1] for f in found])
        matrices = np.concatenate([f[2] for f in found])
        norm = boxes_from_landmarks(landmarks)
        px = np.stack([norm[:, 0] * w, norm[:, 1] * h, (norm[:, 0] + norm[:, 2]) * w, (norm[:, 1] + norm[:, 3]) * h], 1)
        keep = np.sort(nms(px, -np.arange(len(px), dtype=np.float64), 0.5))  # two crops on one face: keep one
        self._followed = px[keep].astype(np.float32)
        return landmarks[keep], blendshapes[keep], matrices[keep]

    def _landmark_regions(self, frame: Frame, k: int, regions: np.ndarray) -> list:
        """Landmark crops with landmarker k (one thread each): per region, arrays or None."""
        h, w = frame.image.shape[:2]
        out = []
        for region in regions:
            crop = Frame(frame.source, frame.index, frame.t, self._crop(frame.image, region))
            lm, bs, mx = self._landmarkers[k].landmark(crop)
            out.append((crop_to_frame(lm[:1], region, self.options.crop_size, w, h), bs[:1], mx[:1]) if len(lm) else None)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        for lm in self._landmarkers:
            lm.close()


def choose_scene(image_bgr: np.ndarray, detector: MtcnnDetector, min_faces: int = 3,
                 small_face: float = 0.12) -> tuple[str, str]:
    """'audience' when a frame shows at least `min_faces` faces or any face smaller than `small_face` of
    the frame height (MediaPipe's own detector misses those), else 'single'. Returns (scene, reason)."""
    boxes, _ = detector.detect(image_bgr)
    if len(boxes) == 0:
        return "single", "no face on the first frame"
    smallest = float((boxes[:, 3] - boxes[:, 1]).min() / image_bgr.shape[0])
    reason = f"{len(boxes)} face(s) on the first frame, smallest {100 * smallest:.0f}% of its height"
    return ("audience" if len(boxes) >= min_faces or smallest < small_face else "single"), reason

