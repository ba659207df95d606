"""Pure functions from MediaPipe's numbers to the per-face values the project reports.

- `blendshape_metrics`: smile, brow_raise, brow_furrow, eye_widen, mouth_open (0-1) from the 52 blendshapes.
- `valence`: -1..1 from expression probabilities.
- `head_pose`: yaw, pitch, roll in degrees from the facial transformation matrix.
- `attention`: 0-1, how squarely the head faces the camera (the screen, for a camera beside it).
- `geometry_features`: landmark positions normalised for position, in-plane rotation and scale.
- `crop_transforms`: the affine maps that cut an upright, square face crop for the CNN.
"""
from __future__ import annotations

import numpy as np

BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
_B = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}

# metric -> blendshapes averaged (each metric is a mean of scores in 0..1, so it stays in 0..1)
METRIC_BLENDSHAPES: dict[str, tuple[str, ...]] = {
    "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "brow_raise": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "brow_furrow": ("browDownLeft", "browDownRight"),
    "eye_widen": ("eyeWideLeft", "eyeWideRight"),
    "mouth_open": ("jawOpen",),
}
_METRIC_WEIGHTS = np.zeros((len(BLENDSHAPE_NAMES), len(METRIC_BLENDSHAPES)), np.float32)
for _j, _names in enumerate(METRIC_BLENDSHAPES.values()):
    for _n in _names:
        _METRIC_WEIGHTS[_B[_n], _j] = 1.0 / len(_names)

# Landmarks used for geometry (MediaPipe face mesh indices): brows, eyes and lids, nose, mouth, jaw.
GEOMETRY_LANDMARKS: tuple[int, ...] = (
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,          # brows
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eye contours
    1, 2, 98, 327,                                           # nose
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,      # outer lips
    78, 81, 13, 311, 308, 402, 14, 178,                      # inner lips
    152, 172, 397, 234, 454, 10,                             # jaw, cheeks, forehead
)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
# Face oval (MediaPipe FACEMESH_FACE_OVAL): the crop's extent is taken from these points only.
FACE_OVAL: tuple[int, ...] = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
                              377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

ATTENTION_FULL_DEG = 15.0  # head within this angle of the camera axis: attention 1
ATTENTION_ZERO_DEG = 60.0  # beyond this: attention 0


def blendshape_metrics(blendshapes: np.ndarray) -> np.ndarray:
    """[N,52] blendshape scores -> [N,5] metrics in `vision.labels.METRICS` order, each 0-1."""
    return np.clip(np.asarray(blendshapes, np.float32) @ _METRIC_WEIGHTS, 0.0, 1.0)


def valence(probs: np.ndarray) -> np.ndarray:
    """[N,7] probabilities -> [N] valence: P(happiness) - P(anger|disgust|fear|sadness), in -1..1."""
    p = np.asarray(probs, np.float32)
    return np.clip(p[:, 3] - p[:, 0] - p[:, 1] - p[:, 2] - p[:, 4], -1.0, 1.0)


def head_pose(matrices: np.ndarray) -> np.ndarray:
    """[N,4,4] facial transformation matrices -> [N,3] (yaw, pitch, roll) in degrees.

    R = Rz(roll) @ Ry(yaw) @ Rx(pitch) in MediaPipe's camera frame (x right, y up, z towards the camera).
    """
    r = np.asarray(matrices, np.float64)[:, :3, :3]
    r = r / np.linalg.norm(r[:, :, 0], axis=1)[:, None, None]  # drop any uniform scale
    yaw = np.arcsin(np.clip(-r[:, 2, 0], -1, 1))
    pitch = np.arctan2(r[:, 2, 1], r[:, 2, 2])
    roll = np.arctan2(r[:, 1, 0], r[:, 0, 0])
    return np.degrees(np.stack([yaw, pitch, roll], axis=1)).astype(np.float32)


def attention(matrices: np.ndarray) -> np.ndarray:
    """[N,4,4] -> [N] in 0..1: 1 while the face's forward axis is within 15 deg of the camera axis,
    falling linearly to 0 at 60 deg."""
    r = np.asarray(matrices, np.float64)[:, :3, :3]
    forward = r[:, :, 2] / np.maximum(np.linalg.norm(r[:, :, 2], axis=1, keepdims=True), 1e-9)
    angle = np.degrees(np.arccos(np.clip(forward[:, 2], -1, 1)))
    span = ATTENTION_ZERO_DEG - ATTENTION_FULL_DEG
    return np.clip((ATTENTION_ZERO_DEG - angle) / span, 0.0, 1.0).astype(np.float32)


QUALITY_SIZE_PX = (20.0, 48.0)  # face box height: quality 0 at or below the first, full from the second
QUALITY_YAW_DEG = (30.0, 75.0)  # |yaw|: full quality within the first, 0 from the second


def face_quality(face_px, det_score, presence, yaw, readable) -> np.ndarray:
    """[N] quality 0-1 of a face's expression reading: the product of four terms, each 0-1,

        size  = clip((face_px - 20) / (48 - 20), 0, 1)     (a 48 px face is big enough, 20 px is not)
        det   = det_score, or 1 where no detector scored the face (NaN)
        pres  = presence, or 1 where the landmarker gives none (NaN)
        pose  = clip((75 - |yaw|) / (75 - 30), 0, 1)        (profile views lose the expression)

    and 0 for an unreadable face (found but not landmarked) or a NaN yaw."""
    px = np.asarray(face_px, np.float64)
    lo, hi = QUALITY_SIZE_PX
    size = np.clip((px - lo) / (hi - lo), 0.0, 1.0)
    det = np.nan_to_num(np.asarray(det_score, np.float64), nan=1.0).clip(0, 1)
    pres = np.nan_to_num(np.asarray(presence, np.float64), nan=1.0).clip(0, 1)
    full, zero = QUALITY_YAW_DEG
    pose = np.nan_to_num(np.clip((zero - np.abs(np.asarray(yaw, np.float64))) / (zero - full), 0.0, 1.0), nan=0.0)
    q = size * det * pres * pose
    return np.where(np.asarray(readable, bool), q, 0.0).astype(np.float32)


def geometry_features(landmarks: np.ndarray, width, height) -> np.ndarray:
    """[N,478,3] normalised landmarks -> [N, 2*len(GEOMETRY_LANDMARKS)] positions in an upright face frame
    (origin between the eyes, x along the eye line, unit = inter-ocular distance). width and height:
    the frame size, one for all faces or one per face."""
    keep = (RIGHT_EYE_OUTER, LEFT_EYE_OUTER) + GEOMETRY_LANDMARKS
    pts = np.asarray(landmarks, np.float64)[:, keep, :2] * _pixel_scale(width, height)
    right, left = pts[:, 0], pts[:, 1]
    d = left - right
    centre, angle = (left + right) / 2, np.arctan2(d[:, 1], d[:, 0])
    iod = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)
    c, s = np.cos(-angle), np.sin(-angle)
    sel = pts[:, 2:, :] - centre[:, None, :]
    x = (c[:, None] * sel[:, :, 0] - s[:, None] * sel[:, :, 1]) / iod[:, None]
    y = (s[:, None] * sel[:, :, 0] + c[:, None] * sel[:, :, 1]) / iod[:, None]
    return np.stack([x, y], axis=2).reshape(len(pts), -1).astype(np.float32)


def _pixel_scale(width, height) -> np.ndarray:
    """Frame size as [N or 1, 1, 2] to scale normalised points: one size for all faces, or one per face."""
    size = np.stack(np.broadcast_arrays(np.asarray(width, np.float64), np.asarray(height, np.float64)), -1)
    return size.reshape(-1, 1, 2)


def crop_transforms(landmarks: np.ndarray, width, height, size: int = 64, margin: float = 1.15) -> np.ndarray:
    """[N,478,3] -> [N,2,3] affine maps from frame pixels to an upright `size` x `size` face crop.

    The crop is square, centred on the face oval's box, rotated so the eyes are level, and `margin` times
    the larger side of that box in the rotated frame."""
    keep = (RIGHT_EYE_OUTER, LEFT_EYE_OUTER) + FACE_OVAL
    pts = np.asarray(landmarks, np.float64)[:, keep, :2] * _pixel_scale(width, height)
    n = len(pts)
    if n == 0:
        return np.zeros((0, 2, 3), np.float32)
    right, left = pts[:, 0], pts[:, 1]
    angle = np.arctan2(left[:, 1] - right[:, 1], left[:, 0] - right[:, 0])
    pts = pts[:, 2:]
    c, s = np.cos(-angle), np.sin(-angle)
    rot = np.stack([np.stack([c, -s], 1), np.stack([s, c], 1)], 1)  # [N,2,2] levels the eyes
    upright = np.einsum("nij,nkj->nki", rot, pts)
    lo, hi = upright.min(axis=1), upright.max(axis=1)
    centre = (lo + hi) / 2
    side = np.maximum((hi - lo).max(axis=1), 1.0) * margin
    scale = size / side
    m = np.zeros((n, 2, 3))
    m[:, :, :2] = rot * scale[:, None, None]
    m[:, :, 2] = size / 2 - centre * scale[:, None]
    return m.astype(np.float32)
