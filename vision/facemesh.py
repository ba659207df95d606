"""MediaPipe's face landmark and blendshape models, run directly on a detector's face crops.

MediaPipe's own landmarker first runs its short-range face detector, which rejects many real faces in a
wide shot. `FaceMesh` skips it: each detector box becomes a square region of interest (ROI) the way
MediaPipe makes one, the ROI is cut out at 256x256, and the two models of the `.task` bundle run on it:

- `face_landmarks_detector.tflite`: RGB in [0, 1] -> 478 landmarks (crop pixels) and a face-presence
  logit (MediaPipe applies a sigmoid; so do we);
- `face_blendshapes.tflite`: 146 of those landmarks, in image pixels -> 52 blendshape scores.

    with FaceMesh(FaceMeshOptions(landmarks_path, blendshapes_path)) as mesh:
        readings = mesh.read(image_bgr, boxes_px)        # [N,4] x1, y1, x2, y2
        readings.landmarks  # [N,478,3], normalised to the frame like vision.landmarker's output
        readings.blendshapes, readings.presence, readings.regions

A region is (cx, cy, side, angle): centre and side in pixels, angle in radians (the crop's x axis is the
image's x axis turned by `angle`, clockwise on screen, as MediaPipe's `NormalizedRect.rotation`).
`regions_from_landmarks` is MediaPipe's own tracking ROI (the landmarks' box, 1.5x, square, turned to
level the eyes): use it to follow a face into the next frame or to refine a first reading.

Runtimes: LiteRT (`ai-edge-litert`, XNNPACK) on CPU, the fastest measured here; ONNX Runtime with the
ONNX copies (`scripts/convert_face_models_onnx.py`) where a GPU provider pays.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import onnx
from .observation import N_BLENDSHAPES, N_LANDMARKS

CROP_SIZE = 256  # the landmark model's input side

# The 146 landmarks the blendshape model takes, in its input order: `kLandmarksSubsetIdxs` in MediaPipe's
# mediapipe/tasks/cc/vision/face_landmarker/face_blendshapes_graph.cc (Apache-2.0).
BLENDSHAPE_LANDMARKS: tuple[int, ...] = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70,
    78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149,
    150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195,
    197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300,
    308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375,
    377, 378, 379, 380, 381, 382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454,
    466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
)
_SUBSET = np.asarray(BLENDSHAPE_LANDMARKS)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263  # MediaPipe's rotation vector for the tracking ROI
ROI_SCALE = 1.5  # MediaPipe's ROI: 1.5x the landmarks' box, square on the long side
BGRA_FROM = 3  # read_regions turns a BGR frame into BGRA first from this many regions up (`for_crops`)


@dataclass(frozen=True)
class FaceMeshOptions:
    landmarks_path: Path
    blendshapes_path: Path
    runtime: str = "litert"  # "litert" (.tflite, CPU) or "onnx" (the ONNX copies, ONNX Runtime)
    device: str = "cpu"  # ONNX Runtime device (vision.onnx: cpu, cuda, auto), runtime "onnx" only
    box_scale: float = 1.5  # ROI side as a multiple of the detector box's larger side (MTCNN: see the model card)
    box_shift: float = 0.07  # ROI centre moved down by this fraction of the box height (negative: up)
    refine: bool = False  # a second pass on MediaPipe's ROI from the first pass's landmarks (2x the cost)
    threads: int = 1  # runtime threads per model
    border: str = "replicate"  # pixels outside the frame: "replicate" the edge (as MediaPipe) or "zero" (black)

    def __post_init__(self):
        if self.runtime not in ("litert", "onnx"):
            raise ValueError(f"runtime must be 'litert' or 'onnx', not {self.runtime!r}")
        if self.box_scale <= 0:
            raise ValueError("box_scale must be > 0")
        if not -1 <= self.box_shift <= 1:
            raise ValueError("box_shift must be within -1..1")
        if self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.border not in ("zero", "replicate"):
            raise ValueError(f"border must be 'zero' or 'replicate', not {self.border!r}")


@dataclass(frozen=True)
class FaceMeshReadings:
    """Per face: landmarks [N,478,3] normalised to the frame (z scaled like x), blendshapes [N,52] in
    `vision.features.BLENDSHAPE_NAMES` order, presence [N] 0-1, regions [N,4] (cx, cy, side, angle)."""

    landmarks: np.ndarray
    blendshapes: np.ndarray
    presence: np.ndarray
    regions: np.ndarray

    def __len__(self) -> int:
        return len(self.presence)

    def __getitem__(self, index) -> "FaceMeshReadings":
        return FaceMeshReadings(self.landmarks[index], self.blendshapes[index], self.presence[index],
                                self.regions[index])

    @classmethod
    def empty(cls) -> "FaceMeshReadings":
        return cls(np.zeros((0, N_LANDMARKS, 3), np.float32), np.zeros((0, N_BLENDSHAPES), np.float32),
                   np.zeros(0, np.float32), np.zeros((0, 4), np.float32))


def regions_from_boxes(boxes_px: np.ndarray, scale: float = 1.5, shift: float = 0.07) -> np.ndarray:
    """[N,4] x1, y1, x2, y2 detector boxes -> [N,4] upright square regions (cx, cy, side, 0)."""
    b = np.asarray(boxes_px, np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2 + shift * h
    side = np.maximum(np.maximum(w, h) * scale, 1.0)
    return np.stack([cx, cy, side, np.zeros_like(cx)], axis=1).astype(np.float32)


def regions_from_landmarks(landmarks: np.ndarray, width: int, height: int, scale: float = ROI_SCALE) -> np.ndarray:
    """[N,478,3] normalised landmarks -> [N,4] MediaPipe's tracking ROI: centred on the landmarks' box,
    `scale` times its longer side (in pixels), turned by the angle of the line from landmark 33 to 263."""
    xy = np.asarray(landmarks, np.float64)[:, :, :2] * (width, height)
    if len(xy) == 0:
        return np.zeros((0, 4), np.float32)
    lo, hi = xy.min(axis=1), xy.max(axis=1)
    centre, size = (lo + hi) / 2, hi - lo
    d = xy[:, LEFT_EYE_OUTER] - xy[:, RIGHT_EYE_OUTER]
    angle = np.arctan2(d[:, 1], d[:, 0])
    side = np.maximum(size.max(axis=1) * scale, 1.0)
    return np.stack([centre[:, 0], centre[:, 1], side, angle], axis=1).astype(np.float32)


def crop_matrices(regions: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """[N,4] regions -> [N,2,3] affine maps from image pixels to the `size` x `size` crop (the ROI's corners
    go to the crop's corners 0 and `size`, as MediaPipe's ImageToTensor maps them)."""
    r = np.asarray(regions, np.float64).reshape(-1, 4)
    s = size / r[:, 2]
    c, n = np.cos(r[:, 3]), np.sin(r[:, 3])
    m = np.empty((len(r), 2, 3))
    m[:, 0, 0], m[:, 0, 1] = c * s, n * s
    m[:, 1, 0], m[:, 1, 1] = -n * s, c * s
    m[:, 0, 2] = size / 2 - (m[:, 0, 0] * r[:, 0] + m[:, 0, 1] * r[:, 1])
    m[:, 1, 2] = size / 2 - (m[:, 1, 0] * r[:, 0] + m[:, 1, 1] * r[:, 1])
    return m


def _presence(logits: np.ndarray) -> np.ndarray:
    """The landmark model's presence logits -> MediaPipe's presence scores (sigmoid), float32."""
    return (1 / (1 + np.exp(-np.asarray(logits, np.float64)))).astype(np.float32)


def _logit(p: float) -> float:
    """The presence logit at which the score is `p` (-inf for 0: every reading passes)."""
    if p <= 0:
        return -np.inf
    if p >= 1:
        return np.inf
    return float(np.log(p / (1 - p)))


def crop_to_frame(points: np.ndarray, region: np.ndarray, width: int, height: int, size: int = CROP_SIZE) -> np.ndarray:
    """[478,3] landmarks in crop pixels -> normalised to the frame (z scaled like x, as MediaPipe's)."""
    return crops_to_frame(np.asarray(points)[None], np.asarray(region)[None], width, height, size)[0]


def crops_to_frame(points: np.ndarray, regions: np.ndarray, width: int, height: int, size: int = CROP_SIZE) -> np.ndarray:
    """[N,K,3] points in the crop pixels of [N,4] regions -> [N,K,3] normalised to the frame, all faces at once
    (the offsets and z in float32 as the model gives them, the turn in float64)."""
    p = np.asarray(points, np.float32)
    r = np.asarray(regions, np.float32).reshape(-1, 4).astype(np.float64)
    f = (r[:, 2] / size).astype(np.float32)[:, None]
    c, s = np.cos(r[:, 3])[:, None], np.sin(r[:, 3])[:, None]
    u, v = (p[..., 0] - np.float32(size / 2)) * f, (p[..., 1] - np.float32(size / 2)) * f
    out = np.empty(p.shape, np.float32)
    out[..., 0] = (r[:, 0:1] + c * u - s * v) / width
    out[..., 1] = (r[:, 1:2] + s * u + c * v) / height
    out[..., 2] = p[..., 2] * f / np.float32(width)
    return out


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 BGR or BGRA -> RGB."""
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def for_crops(image_bgr: np.ndarray) -> np.ndarray:
    """A frame as `FaceMesh` cuts crops from it fastest: BGRA (OpenCV's linear warp of a 4-channel image is
    ~2.4x faster than of a 3-channel one and gives the same pixels; the conversion costs about one crop per
    megapixel). Pass the result to every `read_regions` call of one frame."""
    return image_bgr if image_bgr.shape[2] == 4 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2BGRA)


class _LiteRT:
    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self._it = Interpreter(model_path=str(path), num_threads=threads)
        self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        self._outputs = [d["index"] for d in self._it.get_output_details()]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self._it.set_tensor(self._input, x)
        self._it.invoke()
        return [self._it.get_tensor(i) for i in self._outputs]

    def run_image(self, bgr: np.ndarray, outputs: int | None = None) -> list[np.ndarray]:
        """uint8 BGR [H,W,3] or BGRA [H,W,4] -> the first `outputs` outputs (default all), the image turned to
        RGB and scaled to [0, 1] straight into the input tensor (no extra copy; scaling a channel-reversed view
        instead of converting measured 25x slower)."""
        view = self._it.tensor(self._input)()
        np.copyto(view[0], _rgb(bgr), casting="unsafe")  # then scaled in place: 1.5x faster than one multiply
        view *= np.float32(1 / 255)  # that casts (the same float32 values)
        del view  # the interpreter refuses to run while a view of its buffers is alive
        self._it.invoke()
        return [self._it.get_tensor(i) for i in self._outputs[:outputs]]


class _Onnx:
    def __init__(self, path: Path, threads: int, device: str):
        self._s = onnx.session(path, threads, device)
        self._input = self._s.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self._s.run(None, {self._input: x})

    def run_image(self, bgr: np.ndarray, outputs: int | None = None) -> list[np.ndarray]:
        return self(_rgb(bgr)[None].astype(np.float32) * np.float32(1 / 255))[:outputs]


class FaceMesh:
    """Landmarks, blendshapes and a presence score for every detector box of a frame.

    One instance per thread: an interpreter runs one call at a time."""

    def __init__(self, options: FaceMeshOptions):
        self.options = options
        if options.runtime == "litert":
            self._landmarks = _LiteRT(options.landmarks_path, options.threads)
            self._blendshapes = _LiteRT(options.blendshapes_path, options.threads)
        else:
            self._landmarks = _Onnx(options.landmarks_path, options.threads, options.device)
            self._blendshapes = _Onnx(options.blendshapes_path, options.threads, options.device)
        self._border = cv2.BORDER_CONSTANT if options.border == "zero" else cv2.BORDER_REPLICATE

    def read(self, image_bgr: np.ndarray, boxes_px: np.ndarray) -> FaceMeshReadings:
        """One frame and its detector boxes [N,4] (x1, y1, x2, y2 pixels) -> readings, one per box."""
        regions = regions_from_boxes(boxes_px, self.options.box_scale, self.options.box_shift)
        readings = self.read_regions(image_bgr, regions)
        if self.options.refine and len(readings):
            h, w = image_bgr.shape[:2]
            readings = self.read_regions(image_bgr, regions_from_landmarks(readings.landmarks, w, h))
        return readings

    def read_regions(self, image_bgr: np.ndarray, regions: np.ndarray, min_presence: float = 0.0) -> FaceMeshReadings:
        """One frame (uint8 BGR, or BGRA from `for_crops`) and [N,4] regions (cx, cy, side, angle) -> readings,
        one per region. Blendshapes are read only where the presence score is at least `min_presence` (NaN
        elsewhere: the blendshape model's time is not spent on faces a presence gate refuses)."""
        self._check_open()
        regions = np.asarray(regions, np.float32).reshape(-1, 4)
        n = len(regions)
        if n == 0:
            return FaceMeshReadings.empty()
        if n >= BGRA_FROM and image_bgr.shape[2] == 3:
            image_bgr = for_crops(image_bgr)
        h, w = image_bgr.shape[:2]
        points = np.empty((n, N_LANDMARKS, 3), np.float32)  # crop pixels
        blendshapes = np.empty((n, N_BLENDSHAPES), np.float32)
        logits = np.empty(n, np.float32)
        matrices = crop_matrices(regions)
        scale = np.float32((w, h))
        crop = np.empty((CROP_SIZE, CROP_SIZE, image_bgr.shape[2]), np.uint8)
        gate = _logit(min_presence) - 1e-6  # presence >= min_presence <=> logit >= gate (the sigmoid is monotone;
        #                                       the margin keeps float rounding from refusing a face the gate passes)
        for i in range(n):
            cv2.warpAffine(image_bgr, matrices[i], (CROP_SIZE, CROP_SIZE), dst=crop, flags=cv2.INTER_LINEAR,
                           borderMode=self._border, borderValue=(0, 0, 0))
            out, flag = self._landmarks.run_image(crop, 2)
            points[i] = out.reshape(N_LANDMARKS, 3)
            logits[i] = flag.reshape(-1)[0]
            if logits[i] < gate:
                blendshapes[i] = np.nan
                continue
            pixels = crops_to_frame(points[i:i + 1, _SUBSET], regions[i:i + 1], w, h)[:, :, :2] * scale
            blendshapes[i] = self._blendshapes(pixels)[0].reshape(-1)
        landmarks = crops_to_frame(points, regions, w, h)
        return FaceMeshReadings(landmarks, blendshapes, _presence(logits), regions)

    def _check_open(self) -> None:
        if self._landmarks is None:
            raise RuntimeError("FaceMesh is closed")

    def close(self) -> None:
        self._landmarks = self._blendshapes = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
