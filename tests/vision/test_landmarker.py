"""vision.landmarker's ResultReader: MediaPipe's C result read straight into numpy equals the stock
`FaceLandmarkerResult.from_ctypes` + `result_to_arrays` conversion of the same result, exactly."""
import ctypes
from pathlib import Path

import cv2
import numpy as np
import pytest

from builders import ROOT, SHARED
from vision.capture import Frame
from vision.landmarker import Landmarker, LandmarkerOptions, ResultReader, struct_matches
from vision.registry import model_file

fl = pytest.importorskip("mediapipe.tasks.python.vision.face_landmarker")


def landmarker(mode="video", **kw):
    return Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode=mode, **kw))


def both(lm, rgb, ms):
    """(fast arrays, stock arrays) of one and the same C result."""
    from mediapipe.tasks.python.vision.core.image import Image, ImageFormat

    reader = lm._reader
    image = Image(image_format=ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
    return reader.detect(image, ms, convert=lambda r: (reader.arrays(r), reader.stock(r)))


def assert_same(fast, stock):
    for a, b in zip(fast, stock):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def frames_of(path: Path, every: int = 1, limit: int = 10_000):
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        while i < limit:
            ok, image = cap.read()
            if not ok:
                return
            if i % every == 0:
                yield i, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()


def test_the_known_structs_are_recognised():
    with landmarker() as lm:
        assert lm._reader is not None


def test_fast_equals_stock_on_the_fixture_video_and_images():
    faces = 0
    with landmarker(max_faces=4) as lm:
        for i, rgb in frames_of(ROOT / "fixtures" / "two_faces.mp4"):
            fast, stock = both(lm, rgb, i * 40)
            assert_same(fast, stock)
            faces += len(fast[0])
    assert faces > 0
    with landmarker("image", max_faces=4) as lm:
        for path in sorted((ROOT / "fixtures" / "images").iterdir()):
            image = cv2.imread(str(path))
            if image is not None:
                assert_same(*both(lm, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None))


@pytest.mark.shared
def test_fast_equals_stock_on_shared_videos():
    faces = 0
    with landmarker(max_faces=8) as lm:
        ms = 0
        for name in ("single_face.mp4", "WolfgangLanger_Pexels.mp4", "face_noface.mov"):
            for _, rgb in frames_of(SHARED / "data" / "video" / name, every=3, limit=600):
                fast, stock = both(lm, rgb, ms)
                ms += 40
                assert_same(fast, stock)
                faces += len(fast[0])
    assert faces > 100


@pytest.mark.shared
def test_landmark_output_is_the_same_without_the_reader():
    path = SHARED / "data" / "video" / "single_face.mp4"
    frames = [Frame("s", i, i / 25, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) for i, rgb in frames_of(path, limit=60)]
    with landmarker() as fast, landmarker() as stock:
        stock._reader = None
        for frame in frames:
            assert_same(fast.landmark(frame), stock.landmark(frame))


def fake_result(faces: int, n_points=478, n_scores=52, blend=True, matrix=(4, 4)):
    """A C result built in Python with MediaPipe's own ctypes structs (kept alive on the returned object)."""
    rng = np.random.default_rng(faces + n_points)
    keep = []
    points = (fl.landmark_c_lib.MpNormalizedLandmarksC * max(faces, 1))()
    cats = (fl.category_c_lib.MpCategoriesC * max(faces, 1))()
    mats = (fl.matrix_c_lib.MpMatrixC * max(faces, 1))()
    for i in range(faces):
        arr = (fl.landmark_c_lib.MpNormalizedLandmarkC * n_points)()
        for j, (x, y, z) in enumerate(rng.random((n_points, 3), np.float32).tolist()):
            arr[j].x, arr[j].y, arr[j].z = x, y, z
        points[i].landmarks, points[i].landmarks_count = ctypes.cast(arr, type(points[i].landmarks)), n_points
        scores = (fl.category_c_lib.MpCategoryC * n_scores)()
        for j, s in enumerate(rng.random(n_scores, np.float32).tolist()):
            scores[j].index, scores[j].score = j, s
        cats[i].categories, cats[i].categories_count = ctypes.cast(scores, type(cats[i].categories)), n_scores
        data = (ctypes.c_float * (matrix[0] * matrix[1]))(*rng.random(matrix[0] * matrix[1]).tolist())
        mats[i].rows, mats[i].cols, mats[i].data = matrix[0], matrix[1], ctypes.cast(data, type(mats[i].data))
        keep += [arr, scores, data]
    result = fl.MpFaceLandmarkerResultC()
    result.face_landmarks, result.face_landmarks_count = ctypes.cast(points, type(result.face_landmarks)), faces
    if blend:
        result.face_blendshapes = ctypes.cast(cats, type(result.face_blendshapes))
        result.face_blendshapes_count = faces
    result.facial_transformation_matrixes = ctypes.cast(mats, type(result.facial_transformation_matrixes))
    result.facial_transformation_matrixes_count = faces
    result._keep = keep + [points, cats, mats]
    return result


@pytest.mark.parametrize("case", [dict(faces=0), dict(faces=1), dict(faces=3), dict(faces=2, blend=False),
                                  dict(faces=1, n_points=480, n_scores=53)])
def test_fast_equals_stock_on_built_results(case):
    with landmarker() as lm:
        result = fake_result(**case)
        assert_same(lm._reader.arrays(result), lm._reader.stock(result))


@pytest.mark.parametrize("case", [dict(faces=1, n_points=468), dict(faces=1, n_scores=40)])
def test_results_outside_the_fast_path_behave_as_stock(case):
    with landmarker() as lm:
        result = fake_result(**case)
        with pytest.raises(ValueError):
            lm._reader.stock(result)
        with pytest.raises(ValueError):
            lm._reader.arrays(result)  # it went the stock way


def test_unknown_structs_fall_back_to_the_stock_api():
    class Other(ctypes.Structure):
        _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_float)]

    assert not struct_matches(Other, (("x", ctypes.c_float), ("y", ctypes.c_float)))
    assert struct_matches(Other, (("x", ctypes.c_double), ("y", ctypes.c_float)))
    assert not struct_matches(Other, (("x", ctypes.c_double),))

    class Task:
        _lib, _handle = object(), None

    assert ResultReader.for_task(Task()) is None


def test_the_task_is_called_on_this_thread_when_its_c_signatures_are_the_known_ones():
    with landmarker() as lm:
        assert lm._reader._direct is not None


def test_direct_calls_give_the_dispatchers_results_and_errors():
    frames = [Frame("f", i, i / 25, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
              for i, rgb in frames_of(ROOT / "fixtures" / "two_faces.mp4", limit=30)]
    faces = 0
    with landmarker(max_faces=4) as direct, landmarker(max_faces=4) as dispatched:
        dispatched._reader._direct = None
        for frame in frames:
            out = direct.landmark(frame)
            assert_same(out, dispatched.landmark(frame))
            faces += len(out[0])
        from mediapipe.tasks.python.vision.core.image import Image, ImageFormat

        image = Image(image_format=ImageFormat.SRGB, data=np.ascontiguousarray(frames[0].image[..., ::-1]))
        errors = []
        for lm in (direct, dispatched):  # a timestamp that does not increase: MediaPipe's status, as an exception
            with pytest.raises(Exception) as caught:
                lm._reader.detect(image, 0)
            errors.append((type(caught.value), str(caught.value)))
        assert errors[0] == errors[1] and errors[0][1]
    assert faces > 0


def test_unknown_c_signatures_go_through_the_dispatcher():
    from vision.landmarker import DirectCalls

    class Raw:
        def MpErrorFree(self, *a):  # noqa: N802
            pass

    class Dispatcher:
        _lib = Raw()

    assert DirectCalls.for_library(Dispatcher()) is None
    assert DirectCalls.for_library(object()) is None
