"""MTCNN face detector (Zhang et al., 2016) on ONNX Runtime: finds small faces in wide shots.

Three cascaded networks: P-Net scans an image pyramid for candidate windows, R-Net and O-Net re-score
and refine them, with non-maximum suppression between stages. The networks take RGB scaled to
[-1, 1] with the two image axes swapped (they were trained in Caffe's column-major layout), so every
input is transposed before and every map after.

`MtcnnDetector.detect(image_bgr) -> (boxes [N,4] x1,y1,x2,y2 in pixels, scores [N])`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import onnx


@dataclass(frozen=True)
class MtcnnOptions:
    pnet: Path
    rnet: Path
    onet: Path
    min_face: int = 24  # pixels: smallest face searched for
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    pyramid_factor: float = 0.709
    threads: int = 1
    device: str = "cpu"  # vision.onnx: cpu or cuda

    def __post_init__(self):
        if self.min_face < 12:
            raise ValueError("min_face must be >= 12 pixels")
        if not 0 < self.pyramid_factor < 1:
            raise ValueError("pyramid_factor must be within (0, 1)")


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (IoU, or intersection over the smaller box)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w / 2 - side / 2
    out[:, 1] = boxes[:, 1] + h / 2 - side / 2
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _refine(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply a network's box regression (offsets in units of the box's size)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.copy()
    out[:, 0:4] = boxes[:, 0:4] + reg * np.stack([w, h, w, h], axis=1)
    return out


def _crops(rgb: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """[N, size, size, 3] normalised crops of (possibly out-of-frame) boxes, axes swapped for the nets."""
    h, w = rgb.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(np.round(boxes[:, :4]).astype(int)):
        if x2 <= x1 or y2 <= y1:
            continue
        patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
        if sx2 < sx1 or sy2 < sy1:
            continue
        patch[sy1 - y1:sy2 - y1 + 1, sx1 - x1:sx2 - x1 + 1] = rgb[sy1:sy2 + 1, sx1:sx2 + 1]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return ((out - 127.5) * 0.0078125).transpose(0, 2, 1, 3)


class MtcnnDetector:
    def __init__(self, options: MtcnnOptions):
        self.options = options
        self._pnet, self._rnet, self._onet = (
            onnx.session(path, options.threads, options.device, varying_shapes=True)  # a pyramid, batches of boxes
            for path in (options.pnet, options.rnet, options.onet))

    def _scales(self, h: int, w: int) -> list[float]:
        m = 12.0 / self.options.min_face
        side = min(h, w) * m
        scales = []
        while side >= 12:
            scales.append(m * self.options.pyramid_factor ** len(scales))
            side *= self.options.pyramid_factor
        return scales

    def _proposals(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        found = []
        for scale in self._scales(h, w):
            sw, sh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
            img = (cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) - 127.5) * 0.0078125
            reg, prob = self._pnet.run(None, {self._pnet.get_inputs()[0].name: img.transpose(1, 0, 2)[None]})
            prob, reg = prob[0].transpose(1, 0, 2)[:, :, 1], reg[0].transpose(1, 0, 2)
            ys, xs = np.nonzero(prob >= self.options.thresholds[0])
            if len(ys) == 0:
                continue
            boxes = np.stack([(2 * xs + 1) / scale, (2 * ys + 1) / scale,
                              (2 * xs + 12) / scale, (2 * ys + 12) / scale, prob[ys, xs]], axis=1)
            boxes = np.concatenate([boxes, reg[ys, xs]], axis=1)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5))
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        return np.concatenate([_square(_refine(boxes[:, :4], boxes[:, 5:9])), boxes[:, 4:5]], axis=1)

    def _stage(self, session, rgb, boxes, size, threshold, nms_threshold, by_min=False):
        if len(boxes) == 0:
            return boxes
        outputs = session.run(None, {session.get_inputs()[0].name: _crops(rgb, boxes, size)})
        reg, prob = outputs[0], outputs[-1][:, 1]
        keep = prob >= threshold
        boxes = np.concatenate([_refine(boxes[keep, :4], reg[keep]), prob[keep, None]], axis=1)
        return boxes[nms(boxes[:, :4], boxes[:, 4], nms_threshold, by_min)]

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        boxes = self._proposals(rgb)
        boxes = self._stage(self._rnet, rgb, boxes, 24, self.options.thresholds[1], 0.7)
        if len(boxes):
            boxes = np.concatenate([_square(boxes[:, :4]), boxes[:, 4:5]], axis=1)
        boxes = self._stage(self._onet, rgb, boxes, 48, self.options.thresholds[2], 0.7, by_min=True)
        return boxes[:, :4].astype(np.float32), boxes[:, 4].astype(np.float32)

    def close(self) -> None:
        self._pnet = self._rnet = self._onet = None
