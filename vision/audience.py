"""Audience front end: every face in a wide shot, for MediaPipe's short-range landmarker.

MediaPipe's own detector is built for selfie distance and finds nothing in a wide shot of a theatre.
`AudienceLandmarker.landmark(frame) -> Faces` finds faces with MTCNN on the whole frame every
`detect_every_s` seconds, and between detections follows each face by re-landmarking a square crop around
where it was last (track by crop, as MediaPipe does for one face). Each crop is 1.8x the face, resized to
256 px, and landmarked in image mode; landmarks are mapped back to the frame. Faces found twice are merged.

A face its crop loses is searched for again on the same frame: MTCNN on the region around it
(`research_scale` times its size), or on the whole frame when several are lost at once (`research_full_share`).
A face the detector finds but the landmarker cannot read (turned away, covered, too small) is kept as an
unreadable face (a box and its detector score, no landmarks) when its score is at least
`present_min_score`: the viewer is present, the expression is not read. Per face the result carries the
detector's score (for a face followed by crop: the score it was last detected with) and the landmark
model's presence score (NaN: MediaPipe's Tasks landmarker does not expose it).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .capture import Frame
from .detection import build_detector
from .detector import MtcnnDetector, nms
from .landmarker import Faces, Landmarker, LandmarkerOptions, boxes_from_landmarks
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
    research_scale: float = 4.0  # a lost face is searched for in a square this many times its size
    research_full_share: float = 0.25  # this share of the followed faces (and 2 or more) lost on one frame:
    #                                    search the whole frame instead
    present_min_score: float = 0.9  # a detected face the landmarker cannot read is kept from this score up
    detector: str = "mtcnn"  # which finds the faces: one of vision.detection.DETECTORS
    centerface: Path | None = None  # CenterFace's model, for the detectors that use it
    device: str = "cpu"  # the detectors' ONNX device (vision.onnx)

    def __post_init__(self):
        if self.detect_every_s < 0:
            raise ValueError("detect_every_s must be >= 0 seconds")
        if self.crop_scale < 1:
            raise ValueError("crop_scale must be >= 1")
        if self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.research_scale < 1:
            raise ValueError("research_scale must be >= 1")
        if not 0 < self.research_full_share <= 1:
            raise ValueError("research_full_share must be within (0, 1]")
        if not 0 <= self.present_min_score <= 1:
            raise ValueError("present_min_score must be within 0..1")


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


class AudienceLandmarker:
    """landmark(frame) -> Faces (landmarks, blendshapes, matrices, boxes, det_score, presence, readable)."""

    def __init__(self, options: AudienceOptions):
        self.options = options
        self._detector = build_detector(options.detector, centerface=options.centerface, mtcnn=options.mtcnn,
                                        min_face=options.min_face, threads=options.threads, device=options.device)
        self._landmarkers = [Landmarker(LandmarkerOptions(options.landmarker_path, mode="image", max_faces=1,
                                                          image_padding=0.0)) for _ in range(options.threads)]
        self._pool = ThreadPoolExecutor(options.threads) if options.threads > 1 else None
        self.reset()

    def reset(self) -> None:
        self._followed = np.zeros((0, 4), np.float32)  # last faces' boxes, x1 y1 x2 y2 pixels
        self._followed_scores = np.zeros(0, np.float32)  # the detector score each was last found with
        self._followed_readable = np.zeros(0, bool)  # whether each was read (landmarked) last time
        self._last_detection_t: float | None = None

    def _follow(self, px: np.ndarray, scores: np.ndarray, readable: np.ndarray) -> None:
        """Remember the faces of this frame: their crops are landmarked on the next one."""
        self._followed, self._followed_scores = px.astype(np.float32).reshape(-1, 4), scores.astype(np.float32)
        self._followed_readable = readable.astype(bool)

    def _crop(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        x0, y0, side = region
        s = self.options.crop_size / side
        m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
        return cv2.warpAffine(image, m, (self.options.crop_size, self.options.crop_size),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def _research(self, image: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MTCNN on the square region around each lost face: (boxes x1 y1 x2 y2 pixels, scores)."""
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
        h, w = image.shape[:2]
        due = self._last_detection_t is None or t - self._last_detection_t >= self.options.detect_every_s
        boxes, scores, fresh = self._followed, self._followed_scores, np.zeros(len(self._followed), bool)
        was_read = self._followed_readable
        if due:  # fresh detections, and followed faces the detector did not see (they may be turned away)
            detected, det_scores = self._detector.detect(image)
            self._last_detection_t = t
            seen = (_iou_xyxy(boxes, detected).max(axis=1) >= 0.3) if len(detected) and len(boxes) else \
                np.zeros(len(boxes), bool)
            boxes = np.concatenate([detected, boxes[~seen]])
            was_read = np.concatenate([np.zeros(len(detected), bool), was_read[~seen]])
            scores = np.concatenate([det_scores, scores[~seen]])
            fresh = np.concatenate([np.ones(len(detected), bool), fresh[~seen]])
        results = self._landmark_boxes(frame, boxes[: self.options.max_faces])
        tried, tried_scores, tried_fresh = boxes[: len(results)], scores[: len(results)], fresh[: len(results)]
        ok = np.array([r is not None for r in results], bool)
        lost = tried[~ok & ~tried_fresh]
        if len(lost) and not due:  # search again now, not at the next full detection
            # several faces that were read are lost at once: the whole frame (faces that could not be read
            # last time either are searched for around them, however many)
            lost_read = int((~ok & ~tried_fresh & was_read[: len(results)]).sum())
            if lost_read >= max(2, self.options.research_full_share * len(tried)):
                extra, extra_scores = self._detector.detect(image)
                self._last_detection_t = t
            else:
                extra, extra_scores = self._research(image, lost)
            known = np.concatenate([tried[ok], tried[~ok & tried_fresh]])
            if len(extra) and len(known):
                extra_new = _iou_xyxy(extra, known).max(axis=1) < 0.3
                extra, extra_scores = extra[extra_new], extra_scores[extra_new]
            room = max(self.options.max_faces - len(tried), 0)
            extra, extra_scores = extra[:room], extra_scores[:room]
            more = self._landmark_boxes(frame, extra)
            results += more
            tried = np.concatenate([tried, extra])
            tried_scores = np.concatenate([tried_scores, extra_scores])
            tried_fresh = np.concatenate([tried_fresh, np.ones(len(extra), bool)])
            ok = np.array([r is not None for r in results], bool)
        return self._faces(results, ok, tried, tried_scores, tried_fresh, w, h, t)

    def _faces(self, results, ok, tried, scores, fresh, w, h, t) -> Faces:
        """Readable faces (one per face: two crops on one face keep one), then unreadable fresh detections
        that overlap no readable face; the followed set for the next frame."""
        read = [r for r in results if r is not None]
        read_scores = scores[ok]
        if read:
            landmarks = np.concatenate([r[0] for r in read])
            norm = boxes_from_landmarks(landmarks)
            px = np.stack([norm[:, 0] * w, norm[:, 1] * h, (norm[:, 0] + norm[:, 2]) * w,
                           (norm[:, 1] + norm[:, 3]) * h], 1)
            keep = np.sort(nms(px, -np.arange(len(px), dtype=np.float64), 0.5))
        else:
            landmarks, norm, px, keep = None, np.zeros((0, 4), np.float32), np.zeros((0, 4)), np.zeros(0, np.int64)
        unread = tried[~ok & fresh]
        unread_scores = scores[~ok & fresh]
        strong = unread_scores >= self.options.present_min_score
        unread, unread_scores = unread[strong], unread_scores[strong]
        if len(unread) and len(keep):
            apart = _iou_xyxy(unread, px[keep]).max(axis=1) < 0.3
            unread, unread_scores = unread[apart], unread_scores[apart]
        if len(unread) > 1:  # one detection per face
            k = np.sort(nms(unread, unread_scores, 0.3))
            unread, unread_scores = unread[k], unread_scores[k]
        n_read, n_unread = len(keep), len(unread)
        if n_read + n_unread == 0:
            self._follow(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, bool))
            return _empty_faces()
        clipped = np.clip(unread, 0, [w, h, w, h]).astype(np.float32)
        unread_norm = np.stack([clipped[:, 0] / w, clipped[:, 1] / h, (clipped[:, 2] - clipped[:, 0]) / w,
                                (clipped[:, 3] - clipped[:, 1]) / h], 1).reshape(-1, 4)
        lm = np.zeros((n_read + n_unread, N_LANDMARKS, 3), np.float32)
        bs = np.zeros((n_read + n_unread, N_BLENDSHAPES), np.float32)
        mx = np.tile(np.eye(4, dtype=np.float32), (n_read + n_unread, 1, 1))
        if n_read:
            lm[:n_read] = landmarks[keep]
            bs[:n_read] = np.concatenate([r[1] for r in read])[keep]
            mx[:n_read] = np.concatenate([r[2] for r in read])[keep]
        boxes = np.concatenate([norm[keep], unread_norm]).astype(np.float32)
        det_score = np.concatenate([read_scores[keep], unread_scores]).astype(np.float32)
        readable = np.arange(n_read + n_unread) < n_read
        self._follow(np.concatenate([px[keep], unread]).reshape(-1, 4), det_score.copy(), readable)
        presence = np.full(n_read + n_unread, np.nan, np.float32)
        if n_read:
            presence[:n_read] = np.concatenate([r[3] for r in read])[keep]
        return Faces(lm, bs, mx, boxes, det_score, presence, readable)

    def _landmark_boxes(self, frame: Frame, boxes: np.ndarray) -> list:
        """Landmark the crop around each box (x1 y1 x2 y2 pixels), the landmarkers side by side: per box,
        (landmarks, blendshapes, matrices, presence) mapped to the frame, or None where no face was read."""
        h, w = frame.image.shape[:2]
        regions = square_regions(boxes, self.options.crop_scale, w, h)
        if len(regions) == 0:
            return []
        chunks = [(k, regions[k::len(self._landmarkers)]) for k in range(len(self._landmarkers))]
        run = (lambda c: self._landmark_regions(frame, *c))
        results = list(self._pool.map(run, chunks)) if self._pool and len(regions) > 1 else [run(c) for c in chunks]
        # back in region order, so the output does not depend on the number of threads
        return [r for _, r in sorted(((i * len(chunks) + k, r) for k, rs in enumerate(results)
                                      for i, r in enumerate(rs)), key=lambda x: x[0])]

    def _landmark_regions(self, frame: Frame, k: int, regions: np.ndarray) -> list:
        """Landmark crops with landmarker k (one thread each): per region, (landmarks [1,478,3],
        blendshapes [1,52], matrices [1,4,4], presence [1]) or None."""
        h, w = frame.image.shape[:2]
        out = []
        for region in regions:
            crop = Frame(frame.source, frame.index, frame.t, self._crop(frame.image, region))
            lm, bs, mx = self._landmarkers[k].landmark(crop)
            # MediaPipe's Tasks landmarker exposes no presence score: NaN (a landmark model run directly
            # on the crop gives one; it goes here)
            out.append((crop_to_frame(lm[:1], region, self.options.crop_size, w, h), bs[:1], mx[:1],
                        np.full(1, np.nan, np.float32)) if len(lm) else None)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        for lm in self._landmarkers:
            lm.close()
        self._detector.close()


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

