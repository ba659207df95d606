"""The audience scene's face detector, chosen by a setting; several detectors' boxes as one.

Every detector here has `detect(image_bgr) -> (boxes [N,4] x1,y1,x2,y2 pixels float32, scores [N] float32)`
and `close()`.

- "centerface": CenterFace (`vision/centerface.py`): finds small, blurred and turned faces in real crowds.
- "mtcnn": MTCNN (`vision/detector.py`), the earlier detector.
- "centerface+mtcnn" (default): both, one box per face (CenterFace's wins). CenterFace scores faces that look
  unlike a photo of a head (a face cut out as an oval, as the synthetic audiences of
  `scripts/make_audience.py` are) low; MTCNN at a strict final threshold finds those and adds few false
  detections (real crowds: about +0.3 per image).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .centerface import CenterFaceDetector, CenterFaceOptions
from .detector import MtcnnDetector, MtcnnOptions, nms

DETECTORS = ("centerface+mtcnn", "centerface", "mtcnn")
CONFIDENT = 0.9  # one score scale for every detector: a score from here up is a confident face (the trackers'
#                  `high_score`; MTCNN's own scores are on this scale)
CENTERFACE_CONFIDENT = 0.7  # CenterFace's own score for a confident face (it detects from 0.45)


class Rescored:
    """A detector whose scores are mapped onto the common scale: piecewise linear and monotone, its own
    `confident` score to CONFIDENT (so the trackers' split between confident and less confident faces,
    and the quality column, mean the same whichever detector found the face)."""

    def __init__(self, detector, confident: float):
        if not 0 < confident < 1:
            raise ValueError("confident must be within (0, 1)")
        self.detector, self.confident = detector, confident

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, s = self.detector.detect(image_bgr)
        c = self.confident
        scaled = np.where(s < c, s * (CONFIDENT / c), CONFIDENT + (s - c) * (1 - CONFIDENT) / (1 - c))
        return boxes, scaled.astype(np.float32)

    def close(self) -> None:
        self.detector.close()
UNION_MTCNN_THRESHOLDS = (0.6, 0.7, 0.9)  # MTCNN beside CenterFace: only its surest faces


class DetectorUnion:
    """Boxes of several detectors, one per face: an overlap (IoU >= `iou`) keeps the earlier detector's box,
    with the highest score any of them gave that face (scores share one scale: `Rescored`), so a face one
    detector is unsure of and another is sure of counts as sure."""

    def __init__(self, detectors: list, iou: float = 0.3):
        if not detectors:
            raise ValueError("a union needs at least one detector")
        self.detectors, self.iou = list(detectors), iou

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = [d.detect(image_bgr) for d in self.detectors]
        boxes = np.concatenate([b for b, _ in found]).astype(np.float32)
        scores = np.concatenate([s for _, s in found]).astype(np.float32)
        rank = np.concatenate([np.full(len(b), float(len(found) - k)) for k, (b, _) in enumerate(found)])
        keep = np.sort(nms(boxes, rank + scores / 2, self.iou))  # earlier detector first, then by score
        if len(keep) == 0:
            return boxes[keep], scores[keep]
        same = _iou(boxes[keep], boxes) >= self.iou  # [kept, all]: the boxes each kept box stands for
        return boxes[keep], np.where(same, scores[None, :], 0).max(axis=1).astype(np.float32)

    def close(self) -> None:
        for d in self.detectors:
            d.close()


def build_detector(name: str, *, centerface: Path | None = None, mtcnn: tuple | None = None, min_face: int = 32,
                   threads: int = 1, device: str = "cpu"):
    """The detector `name` (one of DETECTORS) from its model files, on `device` (vision.onnx)."""
    if name not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}")
    if "centerface" in name and centerface is None:
        raise ValueError(f"detector {name} needs the centerface model")
    if "mtcnn" in name and (mtcnn is None or None in mtcnn):
        raise ValueError(f"detector {name} needs the three mtcnn models")
    if name == "centerface":
        return Rescored(CenterFaceDetector(CenterFaceOptions(centerface, threads=threads, device=device)), CENTERFACE_CONFIDENT)
    if name == "mtcnn":
        return MtcnnDetector(MtcnnOptions(*mtcnn, min_face=min_face, threads=threads, device=device))
    return DetectorUnion([Rescored(CenterFaceDetector(CenterFaceOptions(centerface, threads=threads, device=device)),
                                   CENTERFACE_CONFIDENT),
                          MtcnnDetector(MtcnnOptions(*mtcnn, min_face=min_face, thresholds=UNION_MTCNN_THRESHOLDS,
                                                     threads=threads, device=device))])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] intersection over union of x1,y1,x2,y2 boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)
