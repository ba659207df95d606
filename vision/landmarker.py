"""MediaPipe Face Landmarker, wrapped once: explicit model path, explicit running mode, closed deterministically.

`Landmarker.detect(frame)` returns an `Observation` with boxes, landmarks, blendshapes and facial
transformation matrices for every face found. Video mode takes its timestamps from the capture; image
mode pads each still with a black border first (it halves the no-face rate on tight portrait crops) and
maps the landmarks back to the original image. MediaPipe's C result is read straight into numpy
(`ResultReader`) when its ctypes structs are the ones this module knows; otherwise through the stock
`FaceLandmarkerResult` objects (`result_to_arrays`), with the same numbers either way.
"""
from __future__ import annotations

import ctypes
import itertools
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .capture import Frame
from .observation import N_BLENDSHAPES, N_LANDMARKS, Observation


@dataclass(frozen=True)
class LandmarkerOptions:
    model_path: Path
    mode: str = "video"  # "video" (timestamps must increase) or "image" (independent stills)
    max_faces: int = 8
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    image_padding: float = 0.25  # image mode: black border, as a fraction of the larger side

    def __post_init__(self):
        if self.mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', not {self.mode!r}")
        if self.max_faces < 1:
            raise ValueError("max_faces must be >= 1")
        if not 0 <= self.image_padding <= 2:
            raise ValueError("image_padding must be within 0..2")


def result_to_arrays(result, n_landmarks: int = N_LANDMARKS):
    """MediaPipe FaceLandmarkerResult -> (landmarks [N,478,3], blendshapes [N,52], matrices [N,4,4])."""
    faces = result.face_landmarks or []
    n = len(faces)
    landmarks = np.zeros((n, n_landmarks, 3), np.float32)
    blendshapes = np.zeros((n, N_BLENDSHAPES), np.float32)
    matrices = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    xyz = operator.attrgetter("x", "y", "z")
    for i, face in enumerate(faces):
        landmarks[i] = np.fromiter(itertools.chain.from_iterable(map(xyz, face[:n_landmarks])), np.float32,
                                   count=3 * n_landmarks).reshape(n_landmarks, 3)
        if result.face_blendshapes:
            blendshapes[i] = [c.score for c in result.face_blendshapes[i][:N_BLENDSHAPES]]
        if result.facial_transformation_matrixes:
            matrices[i] = np.asarray(result.facial_transformation_matrixes[i], np.float32)
    return landmarks, blendshapes, matrices


class ResultReader:
    """MediaPipe's C result (`MpFaceLandmarkerResultC`) -> the arrays of `result_to_arrays`, read straight
    from the C structs with numpy instead of through the 478 `NormalizedLandmark` and 52 `Category` objects
    per face that the stock `FaceLandmarkerResult.from_ctypes` builds. Calls the task's own C functions
    as its `detect` / `detect_for_video` do, on this thread where it can (`DirectCalls`), else through the
    task's dispatcher. `for_task` builds one only
    when MediaPipe's structs have the fields, types and layout read here (else None: use the stock API);
    a result outside what is read here (a face without its 478 landmarks, 52 blendshapes or a 4x4 matrix)
    goes through the stock conversion, so the numbers are the stock ones either way."""

    def __init__(self, task, module, direct=None):
        self._task, self._fl = task, module
        self._direct = direct  # DirectCalls, or None: through MediaPipe's dispatcher thread
        point = module.landmark_c_lib.MpNormalizedLandmarkC
        self._xyz = np.dtype({"names": ["xyz"], "formats": [("<f4", (3,))], "offsets": [point.x.offset],
                              "itemsize": ctypes.sizeof(point)})
        category = module.category_c_lib.MpCategoryC
        self._score = np.dtype({"names": ["score"], "formats": ["<f4"], "offsets": [category.score.offset],
                                "itemsize": ctypes.sizeof(category)})

    @classmethod
    def for_task(cls, task) -> "ResultReader | None":
        try:
            from mediapipe.tasks.python.vision import face_landmarker as module

            lib = task._lib
            if not (task._handle and all(callable(getattr(lib, name, None)) for name in _C_FUNCTIONS)):
                return None
            if not all(struct_matches(getattr(lib_module(module, where), name), fields)
                       for where, name, fields in _C_STRUCTS):
                return None
            point = module.landmark_c_lib.MpNormalizedLandmarkC
            if (point.y.offset, point.z.offset) != (point.x.offset + 4, point.x.offset + 8):
                return None
            return cls(task, module, DirectCalls.for_library(lib))
        except (ImportError, AttributeError, TypeError):
            return None

    def detect(self, image, timestamp_ms: int | None = None, convert=None):
        """mp.Image -> `convert(result_c)` (default: `arrays`) of one detect (image mode, timestamp None) or
        detect_for_video call; the C result is closed after conversion, as in MediaPipe's own methods."""
        task, result_c = self._task, self._fl.MpFaceLandmarkerResultC()
        ref = ctypes.byref(result_c)
        lib = self._direct or task._lib
        if timestamp_ms is None:
            lib.MpFaceLandmarkerDetectImage(task._handle, image._image_ptr, None, ref)
        else:
            lib.MpFaceLandmarkerDetectForVideo(task._handle, image._image_ptr, None, timestamp_ms, ref)
        try:
            return (convert or self.arrays)(result_c)
        finally:
            lib.MpFaceLandmarkerCloseResult(ref)

    def stock(self, result_c):
        """The stock conversion of the same C result: `FaceLandmarkerResult.from_ctypes` + `result_to_arrays`."""
        return result_to_arrays(self._fl.FaceLandmarkerResult.from_ctypes(result_c))

    def arrays(self, result_c):
        """(landmarks [N,478,3], blendshapes [N,52], matrices [N,4,4]) of one C result, as `stock` gives them."""
        n = result_c.face_landmarks_count
        n_blend, n_matrix = result_c.face_blendshapes_count, result_c.facial_transformation_matrixes_count
        if (n_blend and n_blend < n) or (n_matrix and n_matrix < n):
            return self.stock(result_c)
        landmarks = np.zeros((n, N_LANDMARKS, 3), np.float32)
        blendshapes = np.zeros((n, N_BLENDSHAPES), np.float32)
        matrices = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
        for i in range(n):
            face = result_c.face_landmarks[i]
            points = _c_array(face.landmarks, face.landmarks_count, N_LANDMARKS, self._xyz)
            if points is None:
                return self.stock(result_c)
            landmarks[i] = points["xyz"]
            if n_blend:
                categories = result_c.face_blendshapes[i]
                scores = _c_array(categories.categories, categories.categories_count, N_BLENDSHAPES, self._score)
                if scores is None:
                    return self.stock(result_c)
                blendshapes[i] = scores["score"]
            if n_matrix:
                matrix = result_c.facial_transformation_matrixes[i]
                if (matrix.rows, matrix.cols) != (4, 4) or not matrix.data:
                    return self.stock(result_c)
                matrices[i] = np.ctypeslib.as_array(matrix.data, shape=(4, 4)).T  # column-major, as to_numpy
        return landmarks, blendshapes, matrices


class DirectCalls:
    """The task's three C functions called on this thread, as MediaPipe's `SerialDispatcher` calls them on its
    own: the same C functions with the same arguments, the MpStatus of a detect raised as the same Python
    exception (`handle_status`) and its error message freed. MediaPipe hands every call of a task to one
    dispatcher thread so that no two run at once; a frame loop calls its landmarker from one thread, one call
    at a time, so the hand-over (two thread switches per call, two calls per frame: ~0.1 ms a frame on one
    core) buys nothing there. `for_library` builds one only when the dispatcher's raw library has these
    functions with the argument and return types read here (else None: the calls go through the dispatcher).
    Not for a task used from several threads at once."""

    def __init__(self, raw, handle_status):
        self._raw, self._handle_status = raw, handle_status

    @classmethod
    def for_library(cls, dispatcher) -> "DirectCalls | None":
        try:
            from mediapipe.tasks.python.core.mediapipe_c_utils import handle_status
        except ImportError:
            return None
        raw = getattr(dispatcher, "_lib", None)
        if raw is None or not callable(getattr(raw, "MpErrorFree", None)):
            return None
        error = ctypes.POINTER(ctypes.c_char_p)
        for name, n_args in (("MpFaceLandmarkerDetectImage", 5), ("MpFaceLandmarkerDetectForVideo", 6)):
            f = getattr(raw, name, None)
            argtypes = getattr(f, "argtypes", None) or ()
            if len(argtypes) != n_args or argtypes[-1] is not error or getattr(f, "restype", None) is not ctypes.c_int:
                return None
        close = getattr(raw, "MpFaceLandmarkerCloseResult", None)
        if len(getattr(close, "argtypes", None) or ()) != 1:
            return None
        return cls(raw, handle_status)

    def _status_call(self, function, *args) -> None:
        message = ctypes.c_char_p()
        status = function(*args, ctypes.byref(message))
        try:
            self._handle_status(status, message)
        finally:
            if message.value is not None:
                self._raw.MpErrorFree(message)

    def MpFaceLandmarkerDetectImage(self, *args) -> None:  # noqa: N802 (MediaPipe's C names)
        self._status_call(self._raw.MpFaceLandmarkerDetectImage, *args)

    def MpFaceLandmarkerDetectForVideo(self, *args) -> None:  # noqa: N802
        self._status_call(self._raw.MpFaceLandmarkerDetectForVideo, *args)

    def MpFaceLandmarkerCloseResult(self, ref) -> None:  # noqa: N802
        self._raw.MpFaceLandmarkerCloseResult(ref)


def _c_array(pointer, count: int, need: int, dtype: np.dtype):
    """The first `need` elements of a C array of structs as a numpy view (valid until the result is closed);
    None when it has fewer or is NULL."""
    address = ctypes.cast(pointer, ctypes.c_void_p).value
    if count < need or not address:
        return None
    return np.frombuffer((ctypes.c_char * (need * dtype.itemsize)).from_address(address), dtype, need)


def struct_matches(struct, fields: tuple) -> bool:
    """Whether a ctypes struct's `_fields_` are exactly `fields` ((name, ctypes type or type name) pairs; a
    name stands for a pointer to the struct of that name)."""
    actual = getattr(struct, "_fields_", None)
    if actual is None or len(actual) != len(fields):
        return False
    for (name, kind), (want_name, want) in zip(actual, fields):
        if name != want_name:
            return False
        if isinstance(want, str):
            if getattr(getattr(kind, "_type_", None), "__name__", None) != want:
                return False
        elif kind is not want:
            return False
    return True


def lib_module(module, where: str):
    return module if where == "" else getattr(module, where)


_C_FUNCTIONS = ("MpFaceLandmarkerDetectImage", "MpFaceLandmarkerDetectForVideo", "MpFaceLandmarkerCloseResult")
_U32, _F32, _PTR_F32 = ctypes.c_uint32, ctypes.c_float, ctypes.POINTER(ctypes.c_float)
_C_STRUCTS = (  # (attribute of face_landmarker holding the module, struct name, its fields)
    ("", "MpFaceLandmarkerResultC", (("face_landmarks", "MpNormalizedLandmarksC"), ("face_landmarks_count", _U32),
                                     ("face_blendshapes", "MpCategoriesC"), ("face_blendshapes_count", _U32),
                                     ("facial_transformation_matrixes", "MpMatrixC"),
                                     ("facial_transformation_matrixes_count", _U32))),
    ("landmark_c_lib", "MpNormalizedLandmarksC", (("landmarks", "MpNormalizedLandmarkC"), ("landmarks_count", _U32))),
    ("landmark_c_lib", "MpNormalizedLandmarkC", (("x", _F32), ("y", _F32), ("z", _F32),
                                                 ("has_visibility", ctypes.c_bool), ("visibility", _F32),
                                                 ("has_presence", ctypes.c_bool), ("presence", _F32),
                                                 ("name", ctypes.c_char_p))),
    ("category_c_lib", "MpCategoriesC", (("categories", "MpCategoryC"), ("categories_count", _U32))),
    ("category_c_lib", "MpCategoryC", (("index", ctypes.c_int), ("score", _F32), ("category_name", ctypes.c_char_p),
                                       ("display_name", ctypes.c_char_p))),
    ("matrix_c_lib", "MpMatrixC", (("rows", _U32), ("cols", _U32), ("data", _PTR_F32))),
)


def boxes_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """[N,478,3] normalised landmarks -> [N,4] boxes (x, y, w, h), clipped to the frame."""
    if len(landmarks) == 0:
        return np.zeros((0, 4), np.float32)
    xy = landmarks[:, :, :2]
    boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1).clip(0, 1).astype(np.float32)
    boxes[:, 2:] -= boxes[:, :2]
    return boxes


class Faces(NamedTuple):
    """What a front end found on one frame, row i = face i. The first three fields are what
    `Landmarker.landmark` returns; a front end with a detector adds the rest: boxes [N,4] (x, y, w, h,
    0-1; for a readable face the landmarks' box), det_score [N] (NaN: none), presence [N] (NaN: none),
    readable [N] (False: found, not landmarked; its landmarks, blendshapes and matrices are zeros)."""

    landmarks: np.ndarray
    blendshapes: np.ndarray
    matrices: np.ndarray
    boxes: np.ndarray
    det_score: np.ndarray
    presence: np.ndarray
    readable: np.ndarray


def to_observations(frames: list[Frame], results: list[tuple]) -> list[Observation]:
    """Frames and their front end's results (`Landmarker.landmark`'s three arrays, or `Faces`) ->
    Observations; boxes of plain landmark results computed in one pass."""
    plain = [r for r in results if not isinstance(r, Faces)]
    counts = [len(r[0]) for r in plain]
    boxes = boxes_from_landmarks(np.concatenate([r[0] for r in plain])) if sum(counts) else None
    out, start = [], 0
    for frame, result in zip(frames, results):
        h, w = frame.image.shape[:2]
        if isinstance(result, Faces):
            out.append(Observation(frame.source, frame.index, frame.t, w, h, boxes=result.boxes,
                                   landmarks=result.landmarks, blendshapes=result.blendshapes,
                                   matrices=result.matrices, det_score=result.det_score,
                                   presence=result.presence, readable=result.readable))
            continue
        landmarks, blendshapes, matrices = result
        n = len(landmarks)
        box = boxes[start:start + n].copy() if n else np.zeros((0, 4), np.float32)
        out.append(Observation(frame.source, frame.index, frame.t, w, h, boxes=box, landmarks=landmarks,
                               blendshapes=blendshapes, matrices=matrices))
        start += n
    return out


class Landmarker:
    """Context manager around `mediapipe.tasks.python.vision.FaceLandmarker`."""

    def __init__(self, options: LandmarkerOptions):
        from mediapipe.tasks.python import BaseOptions, vision

        self.options = options
        mode = vision.RunningMode.VIDEO if options.mode == "video" else vision.RunningMode.IMAGE
        mp_options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(options.model_path)),
            running_mode=mode,
            num_faces=options.max_faces,
            min_face_detection_confidence=options.min_detection_confidence,
            min_face_presence_confidence=options.min_presence_confidence,
            min_tracking_confidence=options.min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._task = vision.FaceLandmarker.create_from_options(mp_options)
        self._reader = ResultReader.for_task(self._task)  # None: MediaPipe's structs are not the known ones
        self._last_ms = -1

    def detect(self, frame: Frame) -> Observation:
        """One frame -> its Observation (boxes, landmarks, blendshapes, matrices)."""
        return to_observations([frame], [self.landmark(frame)])[0]

    def landmark(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame -> (landmarks [N,478,3], blendshapes [N,52], matrices [N,4,4]); see to_observations."""
        import mediapipe as mp

        h, w = frame.image.shape[:2]
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        pad = 0
        if self.options.mode == "image" and self.options.image_padding > 0:
            pad = int(round(self.options.image_padding * max(h, w)))
            rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        ms = None
        if self.options.mode == "video":
            ms = max(int(round(frame.t * 1000)), self._last_ms + 1)  # MediaPipe needs strictly increasing
            self._last_ms = ms
        if self._reader is not None:
            landmarks, blendshapes, matrices = self._reader.detect(image, ms)
        else:
            result = self._task.detect(image) if ms is None else self._task.detect_for_video(image, ms)
            landmarks, blendshapes, matrices = result_to_arrays(result)
        if pad:
            scale = np.array([(w + 2 * pad) / w, (h + 2 * pad) / h, (w + 2 * pad) / w], np.float32)
            offset = np.array([pad / w, pad / h, 0], np.float32)
            landmarks = landmarks * scale - offset
        return landmarks, blendshapes, matrices

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
