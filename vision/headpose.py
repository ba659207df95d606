"""Head pose from face landmarks: MediaPipe's canonical 3-D face fitted to the image points by PnP.

`head_pose(landmarks, width, height) -> [N,3]` yaw, pitch, roll in degrees, with the sign convention of
`vision.features.head_pose` (MediaPipe's facial transformation matrix): R = Rz(roll) Ry(yaw) Rx(pitch) in a
camera frame with x right, y up, z towards the camera. Works on landmarks from any source (MediaPipe's
landmarker or `vision.facemesh.FaceMesh`), so a face read on a detector crop gets a pose too.

The camera is a pinhole with a fixed vertical field of view (`VERTICAL_FOV_DEG`, chosen to agree with
MediaPipe's matrix pose) and the principal point at the image centre; the real camera's field of view is
not known, so angles of faces far from the image centre carry a few degrees of perspective error.
"""
from __future__ import annotations

import cv2
import numpy as np

from .features import head_pose as pose_from_matrices

# The PnP camera's vertical field of view. MediaPipe's virtual camera has 63 degrees, but its pose comes from a
# 3-D fit that uses the landmark model's depths; a 2-D PnP agrees with it best with a narrower camera (median
# yaw error on WolfgangLanger_Pexels.mp4: 11 degrees at 63, 1.2 at 20, 4.4 at 2; see models/face_mesh_models.md).
VERTICAL_FOV_DEG = 20.0

# The landmarks MediaPipe's geometry pipeline fits the canonical face with (its Procrustes landmark basis),
# less the jaw line and the face's outer edge (136, 365, 132, 361, 127, 356: they move with the mouth and
# hide on a turned face; dropping them halved the pitch error against MediaPipe's pose), and their positions on the canonical face model (centimetres; x right, y up, z towards the camera for a
# face looking at the camera), both from `geometry_pipeline_metadata_landmarks.binarypb` inside the pinned
# models/face_landmarker.task (MediaPipe, Apache-2.0); scripts/extract_face_models.py decodes it and
# tests/test_facemesh.py checks these numbers against it.
PNP_LANDMARKS: tuple[int, ...] = (4, 6, 10, 33, 54, 67, 117, 119, 121, 129, 133, 143, 147, 198, 205, 263, 284, 297, 346, 348, 350, 358, 362, 372, 376, 420, 425)
CANONICAL_POINTS = np.array([
    (0.000000, -0.463170, 7.586580), (0.000000, 2.473255, 5.788627), (0.000000, 8.261778, 4.481535),
    (-4.445859, 2.663991, 3.173422), (-6.279331, 6.615427, 1.425850), (-3.523964, 8.005976, 3.729163),
    (-5.258659, 0.945811, 2.974312), (-3.300681, 0.861641, 3.872784), (-1.820731, 1.467954, 4.224124),
    (-1.785794, -0.978284, 4.850470), (-1.856432, 2.585245, 3.757904), (-6.407571, 2.236021, 1.560843),
    (-6.234883, -1.944430, 1.663542), (-1.246815, 0.230297, 5.681036), (-3.832928, -1.537326, 4.137731),
    (4.445859, 2.663991, 3.173422), (6.279331, 6.615427, 1.425850), (3.523964, 8.005976, 3.729163),
    (5.258659, 0.945811, 2.974312), (3.300681, 0.861641, 3.872784), (1.820731, 1.467954, 4.224124),
    (1.785794, -0.978284, 4.850470), (1.856432, 2.585245, 3.757904), (6.407571, 2.236021, 1.560843),
    (6.234883, -1.944430, 1.663542), (1.246815, 0.230297, 5.681036), (3.832928, -1.537326, 4.137731),
], np.float64)


def camera_matrix(width: int, height: int, vertical_fov_deg: float | None = None) -> np.ndarray:
    """A pinhole camera with the given vertical field of view, principal point at the image centre."""
    fov = VERTICAL_FOV_DEG if vertical_fov_deg is None else vertical_fov_deg
    f = (height / 2) / np.tan(np.radians(fov) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)


def rotation_matrices(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N,478(or 468),3] normalised landmarks -> [N,4,4] rotations (no translation) in MediaPipe's camera
    frame, from cv2.solvePnP of the canonical points. A face whose fit fails gets NaN."""
    pts = np.ascontiguousarray(np.asarray(landmarks, np.float64)[:, PNP_LANDMARKS, :2] * (width, height))  # OpenCV 5
    #     refuses strided points
    k = camera_matrix(width, height)
    flip = np.diag([1.0, -1.0, -1.0])  # OpenCV's camera (y down, z forward) -> MediaPipe's (y up, z back)
    out = np.tile(np.eye(4), (len(pts), 1, 1))
    for i, p in enumerate(pts):
        try:
            ok, rvec, _ = cv2.solvePnP(CANONICAL_POINTS, p, k, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:  # points too close together (a face a few pixels tall): no fit
            ok = False
        if ok:
            ok, rvec, _ = cv2.solvePnP(CANONICAL_POINTS, p, k, None, rvec, _, useExtrinsicGuess=True,
                                       flags=cv2.SOLVEPNP_ITERATIVE)
        out[i, :3, :3] = flip @ cv2.Rodrigues(rvec)[0] if ok else np.nan
    return out


def head_pose(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N,478,3] landmarks normalised to a width x height frame -> [N,3] yaw, pitch, roll in degrees."""
    if len(landmarks) == 0:
        return np.zeros((0, 3), np.float32)
    return pose_from_matrices(rotation_matrices(landmarks, width, height))
