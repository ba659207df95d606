"""Degrade a face photo the way a venue camera degrades an audience face (training and evaluation only).

Each function is pure (image in, new image out) and takes what it needs explicitly; random choices come
only from the `numpy.random.Generator` passed in, so a seed gives the same image every time.

- `downscale`: the face shrunk to `face_px` pixels wide, then scaled back to the photo's size (the detail
  a 24-64 px face keeps once the pipeline upsamples its crop).
- `jpeg`: JPEG round trip at a quality.
- `low_light`: darker and flatter (gain, gamma), then sensor noise (shot noise + read noise).
- `motion_blur`: a line kernel of a length and angle (a head moving during the exposure).
- `occlude`: a flat patch over the mouth (a hand, popcorn) or the eyes (glasses glare, a hat's shadow).
- `venue`: a random mix of the above for one photo (a `FACE_PX` face; noise, blur and JPEG at that size).
- `fixed_size`: the evaluation condition at one face size (shrunk, JPEG quality 80, back; nothing random).

A face's place is a `FaceBox` (pixels of the photo): its face-oval box and the eye and mouth centres.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FACE_PX = (24, 64)  # the range of face widths venue cameras give an audience face
EVAL_JPEG = 80


@dataclass(frozen=True)
class FaceBox:
    x: float
    y: float
    w: float
    h: float
    eyes_y: float  # eye line
    mouth_y: float  # mouth centre

    @classmethod
    def default(cls, width: int, height: int) -> "FaceBox":
        """Where a centred portrait (LFW-style) has its face, when no landmarks are known."""
        w, h = 0.45 * width, 0.55 * height
        x, y = (width - w) / 2, 0.25 * height
        return cls(x, y, w, h, y + 0.38 * h, y + 0.78 * h)


def shrink(image: np.ndarray, face_px: float, face_width: float) -> np.ndarray:
    """The photo scaled (area averaging) so the face is `face_px` wide: what the camera's sensor records."""
    h, w = image.shape[:2]
    f = min(1.0, face_px / max(face_width, 1.0))
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def restore(small: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Back to the photo's size (bilinear), as the pipeline upsamples a small face's crop."""
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def downscale(image: np.ndarray, face_px: float, face_width: float) -> np.ndarray:
    """Shrink so the face is `face_px` wide, then back to the original size."""
    return restore(shrink(image, face_px, face_width), image.shape)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def low_light(image: np.ndarray, gain: float, gamma: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Scale intensities by `gain` after a `gamma` curve, add shot noise (variance proportional to the signal)
    and read noise (`noise`, in 0-255 units)."""
    x = 255.0 * (image.astype(np.float32) / 255.0) ** gamma * gain
    shot = rng.standard_normal(x.shape).astype(np.float32) * np.sqrt(np.maximum(x, 0) * 0.5)
    read = rng.standard_normal(x.shape).astype(np.float32) * noise
    return np.clip(x + shot + read, 0, 255).astype(np.uint8)


def motion_blur(image: np.ndarray, length: int, angle_deg: float) -> np.ndarray:
    length = max(1, int(length))
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle_deg, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return cv2.filter2D(image, -1, k / max(k.sum(), 1e-6), borderType=cv2.BORDER_REPLICATE)


def occlude(image: np.ndarray, box: FaceBox, part: str, colour: float) -> np.ndarray:
    """A flat patch of grey level `colour` over the mouth or the eyes (part: "mouth" or "eyes")."""
    if part not in ("mouth", "eyes"):
        raise ValueError("part must be 'mouth' or 'eyes'")
    out = image.copy()
    cy = box.mouth_y if part == "mouth" else box.eyes_y
    half = 0.13 * box.h if part == "mouth" else 0.09 * box.h
    x0, x1 = int(box.x + 0.15 * box.w), int(box.x + 0.85 * box.w)
    y0, y1 = int(cy - half), int(cy + half)
    out[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = int(colour)
    return out


def fixed_size(image: np.ndarray, box: FaceBox, face_px: float) -> np.ndarray:
    """The evaluation condition: the face `face_px` wide, JPEG quality 80 at that size, back to size."""
    return restore(jpeg(shrink(image, face_px, box.w), EVAL_JPEG), image.shape)


def venue(image: np.ndarray, box: FaceBox, rng: np.random.Generator) -> np.ndarray:
    """One random venue-camera version of a photo: maybe an occluded mouth or eyes; always a 24-64 px face;
    at that size maybe low light + sensor noise, maybe motion blur; always a JPEG round trip; back to size."""
    out = image
    if rng.random() < 0.2:
        out = occlude(out, box, "mouth" if rng.random() < 0.6 else "eyes", colour=rng.uniform(0, 200))
    out = shrink(out, rng.uniform(*FACE_PX), box.w)
    if rng.random() < 0.5:
        out = low_light(out, gain=rng.uniform(0.25, 0.7), gamma=rng.uniform(1.0, 1.6),
                        noise=rng.uniform(1.0, 5.0), rng=rng)
    if rng.random() < 0.3:
        out = motion_blur(out, length=int(rng.integers(2, 4)), angle_deg=rng.uniform(0, 180))
    return restore(jpeg(out, int(rng.integers(40, 90))), image.shape)
