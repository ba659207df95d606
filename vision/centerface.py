"""CenterFace face detector (Xu et al., 2019) on ONNX Runtime: one network pass finds faces down to ~10 px.

An anchor-free detector (a MobileNetV2 feature pyramid, like CenterNet): at stride 4 it predicts a face-centre
heatmap, the box size (log, in units of 4 px) and a sub-cell offset of the centre. Boxes follow WIDER FACE's
convention (forehead to chin). The image is scaled by `scale` (above 1 helps faces under ~20 px, at a
quadratic cost) and padded to a multiple of 32. A dark frame (mean luma under `low_light_luma`: a dim hall, an
infrared camera) gives fainter peaks, so it is searched with `low_light_threshold` at `low_light_scale`.

`CenterFaceDetector.detect(image_bgr) -> (boxes [N,4] x1,y1,x2,y2 in pixels, scores [N])`, as MtcnnDetector.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import onnx
from .detector import nms

STRIDE = 4


@dataclass(frozen=True)
class CenterFaceOptions:
    model: Path
    threshold: float = 0.45  # heatmap peak score a face needs
    nms_iou: float = 0.3
    scale: float = 1.0  # the image is resized by this factor before the network (1 = as is)
    low_light_luma: float = 60.0  # 0-255: a frame darker than this on average is searched as below (0: never)
    low_light_threshold: float = 0.35
    low_light_scale: float = 1.5
    max_side: int = 4096  # pixels: the scaled image's longer side is capped here (cost grows with its area)
    threads: int = 1
    device: str = "cpu"  # ONNX Runtime device (vision.onnx)

    def __post_init__(self):
        if not (0 < self.threshold < 1 and 0 < self.low_light_threshold < 1):
            raise ValueError("threshold and low_light_threshold must be within (0, 1)")
        if not 0 <= self.low_light_luma <= 255:
            raise ValueError("low_light_luma must be within [0, 255]")
        if not 0 < self.nms_iou <= 1:
            raise ValueError("nms_iou must be within (0, 1]")
        if not (0.25 <= self.scale <= 4 and 0.25 <= self.low_light_scale <= 4):
            raise ValueError("scale and low_light_scale must be within [0.25, 4]")
        if self.max_side < 64:
            raise ValueError("max_side must be >= 64 pixels")
        if self.threads < 1:
            raise ValueError("threads must be >= 1")


def decode(heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Maps of one image ([1,h,w], [2,h,w], [2,h,w]) -> boxes [N,4] x1,y1,x2,y2 in network-input pixels, scores."""
    ys, xs = np.nonzero(heatmap[0] > threshold)
    if len(ys) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    bh, bw = np.exp(size[0, ys, xs]) * STRIDE, np.exp(size[1, ys, xs]) * STRIDE
    cy, cx = (ys + offset[0, ys, xs] + 0.5) * STRIDE, (xs + offset[1, ys, xs] + 0.5) * STRIDE
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return boxes.astype(np.float32), heatmap[0, ys, xs].astype(np.float32)


def mean_luma(image_bgr: np.ndarray) -> float:
    """A frame's mean luma 0-255, from an 8x smaller copy."""
    h, w = image_bgr.shape[:2]
    small = cv2.resize(image_bgr, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    return float(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).mean())


class CenterFaceDetector:
    def __init__(self, options: CenterFaceOptions):
        self.options = options
        self._session = onnx.session(options.model, options.threads, options.device, varying_shapes=True)
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()][:3]  # heatmap, size, offset

    def is_dim(self, image_bgr: np.ndarray) -> bool:
        """Mean luma (of an 8x smaller copy) under `low_light_luma`."""
        return mean_luma(image_bgr) < self.options.low_light_luma

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image_bgr.shape[:2]
        o = self.options
        threshold, scale = (o.low_light_threshold, o.low_light_scale) if self.is_dim(image_bgr) else (o.threshold, o.scale)
        f = min(scale, o.max_side / max(h, w))
        sw, sh = max(1, round(w * f)), max(1, round(h * f))
        rgb = cv2.cvtColor(image_bgr if f == 1 else cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_LINEAR),
                           cv2.COLOR_BGR2RGB)
        ph, pw = -(-sh // 32) * 32, -(-sw // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :sh, :sw] = rgb.transpose(2, 0, 1)
        heatmap, size, offset = (m[0] for m in self._session.run(self._outputs, {self._input: blob}))
        boxes, scores = decode(heatmap, size, offset, threshold)
        keep = nms(boxes, scores, self.options.nms_iou)
        boxes, scores = boxes[keep] / np.float32(f), scores[keep]
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        return boxes.astype(np.float32), scores.astype(np.float32)

    def close(self) -> None:
        self._session = None
