"""Audience front end: every face in a wide shot, read by MediaPipe's face mesh models on the detector's crops.

MediaPipe's own detector is built for selfie distance and finds nothing in a wide shot of a theatre.
`AudienceLandmarker.landmark(frame) -> Faces` finds faces with the configured detector (`vision.detection`) on
the whole frame every `detect_every_s` seconds (up to `detect_backoff` times that while nothing changes, see below) and
reads each box with `vision.facemesh.FaceMesh` (MediaPipe's
landmark and blendshape models run directly on the crop: no second detector). The landmark model's presence
score gates the faces: a reading with presence >= `presence_min` is a face read. Between detections each face
read is followed MediaPipe's own way: the next frame is read on the region its landmarks give
(`regions_from_landmarks`: 1.5x the landmarks' box, turned to level the eyes). Faces found twice are merged.

A followed face whose presence drops below the gate is lost and searched for again on the same frame: the
detector on the region around it (`research_scale` times its size), or on the whole frame when several are
lost at once (`research_full_share`). A face the detector finds but the gate refuses (turned away, covered,
too small) is kept as an unreadable face (a box and its detector score, no landmarks) when its score is at
least `present_min_score`: the viewer is present, the expression is not read. A dim frame (mean luma under
`low_light_luma`: a dark hall, an infrared camera) gives every face a lower detector score (CenterFace searches
it at a lower threshold), so there an unreadable face is kept from `present_min_score_dim`, and its sensor
noise, which lowers the landmark model's presence score, is smoothed (`low_light_blur`) before FaceMesh reads
it (the detector sees the frame as it is). Per face the result carries the
detector's score (for a face followed by region: the score it was last detected with), the presence score
(NaN for a face not read) and head rotations from the landmarks (`vision.headpose`, PnP).

Detection cadence: a full detection that finds no face it did not already know (every box overlaps a followed
face or one of the last full detection's) and a frame with no face lost let the wait before the next one double,
up to `detect_backoff` x `detect_every_s`; a new face or a lost one brings it back to `detect_every_s`. A seated audience is
then searched for newcomers every few seconds instead of every two (the detector on a 1080p frame costs as much
as reading ~200 faces); faces that leave are searched for at once as before. The detector runs on
`detector_threads` ONNX Runtime threads (1: two threads cost 1.4x the CPU time for 0.6x the wall time on an
idle core, and more on a busy one, where the audience benchmark's two workers already fill both cores).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .capture import Frame
from .centerface import mean_luma
from .detection import build_detector
from .detector import nms
from .facemesh import FaceMesh, FaceMeshOptions, FaceMeshReadings, for_crops, regions_from_boxes, regions_from_landmarks
from .headpose import rotation_matrices
from .landmarker import Faces, boxes_from_landmarks
from .observation import N_BLENDSHAPES, N_LANDMARKS

LOW_LIGHT_BLUR = 3  # measured on the dim variant of ../shared/data/crowds (README, the audience scene)
PRESENT_MIN_SCORE_DIM = 0.65  # measured on ../shared/data/crowds and its dim variant (README, the audience scene)
PRESENCE_MIN = 0.5  # the presence gate (measured on ../shared/data/crowds, README "Audience front end")
SECOND_LOOK_MIN = 0.05  # a refused first reading is read again from this presence up (scripts/eval_second_look.py:
#                         on ../shared/data/crowds this keeps 49% of the faces a second look turns for 22% of its
#                         cost; the band 0.01-0.05 turned 28% of its faces at 0.07 landmark calls per detection)
# The region read around a detector's box (box_scale, box_shift), per detector: MTCNN's boxes are fitted in
# models/face_mesh_models.md; CenterFace's (WIDER's convention, forehead to chin) by scripts/eval_presence.py.
BOX_ROI = {"mtcnn": (1.5, 0.07), "centerface": (1.5, 0.02), "centerface+mtcnn": (1.5, 0.02)}


def box_roi(detector: str) -> tuple[float, float]:
    """(box_scale, box_shift) for the boxes of `detector` (one of vision.detection.DETECTORS)."""
    return BOX_ROI[detector]


@dataclass(frozen=True)
class AudienceOptions:
    face_mesh: tuple[Path, Path]  # the landmark and blendshape models (registry: face_landmarks, face_blendshapes)
    mtcnn: tuple[Path, Path, Path]
    detect_every_s: float = 2.0  # full-frame detection cadence; faces are followed by region in between ...
    detect_backoff: float = 3.0  # ... up to this many times longer while detections find nothing new (module
    #                              doc; 1: a fixed cadence)
    detector_threads: int = 1  # ONNX Runtime threads of the detector (module doc)
    min_face: int = 32  # pixels, smallest face MTCNN looks for (a 48 px face gives a ~56 px box)
    presence_min: float = PRESENCE_MIN  # a reading counts as a face read from this presence score up
    box_scale: float = 1.5  # the region read around a detector box: this many times its larger side ...
    box_shift: float = 0.07  # ... its centre moved down by this share of the box height
    max_faces: int = 500
    threads: int = 2  # FaceMesh instances run side by side on the faces of a frame (crops are independent)
    research_scale: float = 4.0  # a lost face is searched for in a square this many times its size
    research_full_share: float = 0.25  # this share of the followed faces (and 2 or more) lost on one frame:
    #                                    search the whole frame instead
    present_min_score: float = 0.8  # a detected face the gate refuses is kept from this score up
    present_min_score_dim: float = PRESENT_MIN_SCORE_DIM  # ... and from this one on a dim frame
    low_light_luma: float = 60.0  # 0-255: a frame darker than this on average is dim (as CenterFace's low light)
    low_light_blur: int = LOW_LIGHT_BLUR  # FaceMesh reads a dim frame through a Gaussian blur this wide (odd px;
    #                                       0 or 1: as is): the sensor noise of a dark frame lowers its presence
    second_look: bool = True  # a fresh detection the gate refuses is read again on its landmarks' region ...
    second_look_min: float = SECOND_LOOK_MIN  # ... when its first presence score is at least this ...
    second_look_min_dim: float = 0.0  # ... on a dim frame (its noise lowers every presence score: there a second
    #                                   look pays from any score; measured on the dim variant of the crowds)
    detector: str = "mtcnn"  # which finds the faces: one of vision.detection.DETECTORS
    centerface: Path | None = None  # CenterFace's model, for the detectors that use it
    device: str = "cpu"  # the detectors' ONNX device (vision.onnx)

    def __post_init__(self):
        if self.detect_every_s < 0:
            raise ValueError("detect_every_s must be >= 0 seconds")
        if self.detect_backoff < 1:
            raise ValueError("detect_backoff must be >= 1")
        if self.detector_threads < 1:
            raise ValueError("detector_threads must be >= 1")
        if not 0 <= self.presence_min <= 1:
            raise ValueError("presence_min must be within 0..1")
        if not (0 <= self.second_look_min <= 1 and 0 <= self.second_look_min_dim <= 1):
            raise ValueError("second_look_min and second_look_min_dim must be within 0..1")
        if self.box_scale <= 0:
            raise ValueError("box_scale must be > 0")
        if self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.research_scale < 1:
            raise ValueError("research_scale must be >= 1")
        if not 0 < self.research_full_share <= 1:
            raise ValueError("research_full_share must be within (0, 1]")
        if not (0 <= self.present_min_score <= 1 and 0 <= self.present_min_score_dim <= 1):
            raise ValueError("present_min_score and present_min_score_dim must be within 0..1")
        if not 0 <= self.low_light_luma <= 255:
            raise ValueError("low_light_luma must be within 0..255")
        if self.low_light_blur < 0 or (self.low_light_blur > 1 and self.low_light_blur % 2 == 0):
            raise ValueError("low_light_blur must be 0, 1 or an odd number of pixels")


def square_regions(boxes_px: np.ndarray, scale: float, width: int, height: int) -> np.ndarray:
    """[N,4] x1,y1,x2,y2 face boxes -> [N,3] (x0, y0, side) square regions `scale` times the face."""
    cx, cy = (boxes_px[:, 0] + boxes_px[:, 2]) / 2, (boxes_px[:, 1] + boxes_px[:, 3]) / 2
    side = np.maximum(boxes_px[:, 2] - boxes_px[:, 0], boxes_px[:, 3] - boxes_px[:, 1]) * scale
    return np.stack([cx - side / 2, cy - side / 2, np.maximum(side, 8.0)], axis=1)


def _iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between [N,4] and [M,4] boxes given as x1, y1, x2, y2."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _empty_faces() -> Faces:
    z = np.zeros(0, np.float32)
    return Faces(np.zeros((0, N_LANDMARKS, 3), np.float32), np.zeros((0, N_BLENDSHAPES), np.float32),
                 np.zeros((0, 4, 4), np.float32), np.zeros((0, 4), np.float32), z, z.copy(), np.zeros(0, bool))


def _concat(readings: list[FaceMeshReadings]) -> FaceMeshReadings:
    if not readings:
        return FaceMeshReadings.empty()
    return FaceMeshReadings(*(np.concatenate([getattr(r, f) for r in readings])
                              for f in ("landmarks", "blendshapes", "presence", "regions")))


class AudienceLandmarker:
    """landmark(frame) -> Faces (landmarks, blendshapes, matrices, boxes, det_score, presence, readable)."""

    def __init__(self, options: AudienceOptions):
        self.options = options
        self._detector = build_detector(options.detector, centerface=options.centerface, mtcnn=options.mtcnn,
                                        min_face=options.min_face, threads=options.detector_threads,
                                        device=options.device)
        mesh = FaceMeshOptions(*options.face_mesh, box_scale=options.box_scale, box_shift=options.box_shift,
                               device=options.device)
        self._meshes = [FaceMesh(mesh) for _ in range(options.threads)]  # one per thread
        self._pool = ThreadPoolExecutor(options.threads) if options.threads > 1 else None
        self.reset()

    def reset(self) -> None:
        self._followed = np.zeros((0, 4), np.float32)  # last faces' boxes, x1 y1 x2 y2 pixels
        self._followed_regions = np.zeros((0, 4), np.float32)  # where each is read next (cx, cy, side, angle)
        self._followed_scores = np.zeros(0, np.float32)  # the detector score each was last found with
        self._followed_readable = np.zeros(0, bool)  # whether each was read last time
        self._last_detection_t: float | None = None
        self._detect_wait = self.options.detect_every_s  # seconds from one full detection to the next
        self._last_detected = np.zeros((0, 4), np.float32)  # the last full detection's boxes

    def _regions(self, boxes: np.ndarray) -> np.ndarray:
        return regions_from_boxes(boxes, self.options.box_scale, self.options.box_shift)

    def _research(self, image: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detector on the square region around each lost face: (boxes x1 y1 x2 y2 pixels, scores)."""
        h, w = image.shape[:2]
        found, scores = [], []
        for x0, y0, side in square_regions(lost, self.options.research_scale, w, h):
            side = max(side, 2.0 * self.options.min_face)
            x0, y0 = int(max(x0, 0)), int(max(y0, 0))
            x1, y1 = int(min(x0 + side, w)), int(min(y0 + side, h))
            if min(x1 - x0, y1 - y0) < self.options.min_face:
                continue
            b, s = self._detector.detect(image[y0:y1, x0:x1])
            found.append(b + np.array([x0, y0, x0, y0], np.float32))
            scores.append(s)
        if not found:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes, scores = np.concatenate(found), np.concatenate(scores)
        keep = nms(boxes, scores, 0.3)
        return boxes[keep], scores[keep]

    def landmark(self, frame: Frame) -> Faces:
        image, t = frame.image, frame.t
        due = self._last_detection_t is None or t - self._last_detection_t >= self._detect_wait
        boxes, regions = self._followed, self._followed_regions
        scores, fresh = self._followed_scores, np.zeros(len(self._followed), bool)
        was_read = self._followed_readable
        if due:  # fresh detections, and followed faces the detector did not see (they may be turned away)
            detected, det_scores = self._detector.detect(image)
            self._last_detection_t = t
            seen = (_iou_xyxy(boxes, detected).max(axis=1) >= 0.3) if len(detected) and len(boxes) else \
                np.zeros(len(boxes), bool)
            known = np.concatenate([boxes, self._last_detected])
            new = len(detected) if len(known) == 0 else int((_iou_xyxy(detected, known).max(axis=1) < 0.3).sum())
            self._last_detected = detected
            self._detect_wait = self.options.detect_every_s if new else \
                min(2 * self._detect_wait, self.options.detect_backoff * self.options.detect_every_s)
            boxes = np.concatenate([detected, boxes[~seen]])
            regions = np.concatenate([self._regions(detected), regions[~seen]])
            was_read = np.concatenate([np.zeros(len(detected), bool), was_read[~seen]])
            scores = np.concatenate([det_scores, scores[~seen]])
            fresh = np.concatenate([np.ones(len(detected), bool), fresh[~seen]])
        n = min(len(boxes), self.options.max_faces)
        tried, tried_scores, tried_fresh = boxes[:n], scores[:n], fresh[:n]
        dim = mean_luma(image) < self.options.low_light_luma
        k = self.options.low_light_blur
        mesh_image = for_crops(cv2.GaussianBlur(image, (k, k), 0) if dim and k > 1 else image)  # what FaceMesh reads
        readings = self._second_look(mesh_image, self._read(mesh_image, regions[:n]), tried_fresh, dim)
        ok = readings.presence >= self.options.presence_min
        lost = tried[~ok & ~tried_fresh]
        if len(lost):
            self._detect_wait = self.options.detect_every_s  # the scene changes: back to the base cadence
        if len(lost) and not due:  # search again now, not at the next full detection
            # several faces that were read are lost at once: the whole frame (faces that could not be read
            # last time either are searched for around them, however many)
            lost_read = int((~ok & ~tried_fresh & was_read[:n]).sum())
            if lost_read >= max(2, self.options.research_full_share * len(tried)):
                extra, extra_scores = self._detector.detect(image)
                self._last_detection_t, self._last_detected = t, extra
            else:
                extra, extra_scores = self._research(image, lost)
            known = np.concatenate([tried[ok], tried[~ok & tried_fresh]])
            if len(extra) and len(known):
                extra_new = _iou_xyxy(extra, known).max(axis=1) < 0.3
                extra, extra_scores = extra[extra_new], extra_scores[extra_new]
            room = max(self.options.max_faces - len(tried), 0)
            extra, extra_scores = extra[:room], extra_scores[:room]
            readings = _concat([readings, self._second_look(mesh_image, self._read(mesh_image, self._regions(extra)),
                                                            np.ones(len(extra), bool), dim)])
            tried = np.concatenate([tried, extra])
            tried_scores = np.concatenate([tried_scores, extra_scores])
            tried_fresh = np.concatenate([tried_fresh, np.ones(len(extra), bool)])
            ok = readings.presence >= self.options.presence_min
        return self._faces(image, dim, readings, ok, tried, tried_scores, tried_fresh)

    def _faces(self, image: np.ndarray, dim: bool, readings: FaceMeshReadings, ok, tried, scores, fresh) -> Faces:
        """Faces read (one per face: two regions on one face keep the better presence), then unreadable fresh
        detections that overlap no face read; the followed set for the next frame."""
        h, w = image.shape[:2]
        read, read_scores = readings[ok], scores[ok]
        norm = boxes_from_landmarks(read.landmarks)
        px = np.stack([norm[:, 0] * w, norm[:, 1] * h, (norm[:, 0] + norm[:, 2]) * w,
                       (norm[:, 1] + norm[:, 3]) * h], 1).reshape(-1, 4)
        keep = np.sort(nms(px, read.presence.astype(np.float64), 0.5)) if len(read) else np.zeros(0, np.int64)
        read, read_scores, norm, px = read[keep], read_scores[keep], norm[keep], px[keep]
        unread = tried[~ok & fresh]
        unread_scores = scores[~ok & fresh]
        strong = unread_scores >= (self.options.present_min_score_dim if dim else self.options.present_min_score)
        unread, unread_scores = unread[strong], unread_scores[strong]
        if len(unread) and len(px):
            apart = _iou_xyxy(unread, px).max(axis=1) < 0.3
            unread, unread_scores = unread[apart], unread_scores[apart]
        if len(unread) > 1:  # one detection per face
            k = np.sort(nms(unread, unread_scores, 0.3))
            unread, unread_scores = unread[k], unread_scores[k]
        n_read, n_unread = len(read), len(unread)
        if n_read + n_unread == 0:
            self._follow(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                         np.zeros(0, bool))
            return _empty_faces()
        clipped = np.clip(unread, 0, [w, h, w, h]).astype(np.float32)
        unread_norm = np.stack([clipped[:, 0] / w, clipped[:, 1] / h, (clipped[:, 2] - clipped[:, 0]) / w,
                                (clipped[:, 3] - clipped[:, 1]) / h], 1).reshape(-1, 4)
        n = n_read + n_unread
        lm = np.zeros((n, N_LANDMARKS, 3), np.float32)
        bs = np.zeros((n, N_BLENDSHAPES), np.float32)
        mx = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
        presence = np.full(n, np.nan, np.float32)
        if n_read:
            lm[:n_read], bs[:n_read], presence[:n_read] = read.landmarks, read.blendshapes, read.presence
            mx[:n_read] = rotation_matrices(read.landmarks, w, h)
        boxes = np.concatenate([norm, unread_norm]).astype(np.float32)
        det_score = np.concatenate([read_scores, unread_scores]).astype(np.float32)
        readable = np.arange(n) < n_read
        self._follow(np.concatenate([px, unread]).reshape(-1, 4),
                     np.concatenate([regions_from_landmarks(read.landmarks, w, h), self._regions(unread)]),
                     det_score.copy(), readable)
        return Faces(lm, bs, mx, boxes, det_score, presence, readable)

    def _second_look(self, image: np.ndarray, readings: FaceMeshReadings, fresh: np.ndarray,
                     dim: bool = False) -> FaceMeshReadings:
        """Fresh detections the gate refuses with a presence of at least `second_look_min` (`second_look_min_dim`
        on a dim frame) are read once more on the region their first landmarks give (MediaPipe's own ROI, as a
        followed face is read); the better presence of the two readings is kept. Under `second_look_min` a
        second look seldom pays (measured: scripts/eval_second_look.py)."""
        p, floor = readings.presence, self.options.second_look_min_dim if dim else self.options.second_look_min
        again = np.flatnonzero(fresh & (p < self.options.presence_min) & (p > 0) & (p >= floor))
        if len(again) == 0 or not self.options.second_look:
            return readings
        h, w = image.shape[:2]
        second = self._read(image, regions_from_landmarks(readings.landmarks[again], w, h))
        better = second.presence > readings.presence[again]
        if not better.any():
            return readings
        out = FaceMeshReadings(readings.landmarks.copy(), readings.blendshapes.copy(), readings.presence.copy(),
                               readings.regions.copy())
        for f in ("landmarks", "blendshapes", "presence", "regions"):
            getattr(out, f)[again[better]] = getattr(second, f)[better]
        return out

    def _follow(self, px: np.ndarray, regions: np.ndarray, scores: np.ndarray, readable: np.ndarray) -> None:
        """Remember the faces of this frame: their regions are read on the next one."""
        self._followed, self._followed_scores = px.astype(np.float32).reshape(-1, 4), scores.astype(np.float32)
        self._followed_regions = regions.astype(np.float32).reshape(-1, 4)
        self._followed_readable = readable.astype(bool)

    def _read(self, image: np.ndarray, regions: np.ndarray) -> FaceMeshReadings:
        """Read each region (cx, cy, side, angle), the FaceMesh instances side by side; readings in region order
        (the output does not depend on the number of threads). Blendshapes only for readings through the gate."""
        regions = np.asarray(regions, np.float32).reshape(-1, 4)
        k = len(self._meshes)
        if len(regions) <= 1 or self._pool is None:
            return self._meshes[0].read_regions(image, regions, self.options.presence_min)
        chunks = [regions[i::k] for i in range(k)]
        parts = list(self._pool.map(lambda i: self._meshes[i].read_regions(image, chunks[i], self.options.presence_min),
                                    range(k)))
        order = np.argsort(np.concatenate([np.arange(i, len(regions), k) for i in range(k)]), kind="stable")
        return _concat(parts)[order]

    def close(self) -> None:
        for m in self._meshes:
            m.close()
        self._detector.close()
        if self._pool is not None:
            self._pool.shutdown()
