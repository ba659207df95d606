"""The audience front end on dim frames: the light decides, per frame, the present bar and FaceMesh's denoising."""
import cv2
import numpy as np
import pytest

from builders import FIXTURES
from vision.audience import AudienceLandmarker, AudienceOptions
from vision.capture import Frame
from vision.centerface import mean_luma
from vision.detector import MtcnnDetector, MtcnnOptions
from vision.facemesh import FaceMesh, FaceMeshOptions, crop_to_frame, crops_to_frame, regions_from_boxes
from vision.registry import model_file
from vision.quiet import native_stderr_to_devnull

MESH = (model_file("face_landmarks").path, model_file("face_blendshapes").path)
MTCNN = tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet"))


class OneBox:
    """A detector that finds one box with a given score wherever it looks."""

    def __init__(self, score: float):
        self.score = score

    def detect(self, image):
        return np.array([[300, 200, 340, 250]], np.float32), np.array([self.score], np.float32)

    def close(self):
        pass


def noise(level: int, seed: int = 0) -> np.ndarray:
    """A 640x480 frame with no face: uniform noise around `level`."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(level, 6, (480, 640, 3)), 0, 255).astype(np.uint8)


def landmarker(**options) -> AudienceLandmarker:
    with native_stderr_to_devnull():
        return AudienceLandmarker(AudienceOptions(MESH, MTCNN, threads=1, **options))


def test_a_dim_frame_keeps_a_less_confident_unreadable_face_as_present():
    a = landmarker()
    a._detector = OneBox(0.7)  # between the dim bar (0.65) and the bright one (0.8)
    try:
        bright, dark = noise(120), noise(20)
        assert mean_luma(bright) >= 60 > mean_luma(dark)
        with native_stderr_to_devnull():
            seen_bright = a.landmark(Frame("b", 0, 0.0, bright))
            a.reset()
            seen_dark = a.landmark(Frame("d", 0, 0.0, dark))
    finally:
        a.close()
    assert len(seen_bright.boxes) == 0  # no face read, the score under the bright frame's bar
    assert len(seen_dark.boxes) == 1 and not seen_dark.readable[0] and np.isnan(seen_dark.presence[0])
    assert seen_dark.det_score[0] == pytest.approx(0.7)


@pytest.mark.parametrize("blur", [3, 0])
def test_facemesh_reads_a_dim_frame_through_the_blur_and_a_bright_one_as_is(blur):
    a = landmarker(low_light_blur=blur)
    a._detector = OneBox(0.95)
    seen = []
    read = a._read
    a._read = lambda image, regions: (seen.append(image), read(image, regions))[1]
    try:
        bright, dark = noise(120, 1), noise(20, 2)
        with native_stderr_to_devnull():
            a.landmark(Frame("b", 0, 0.0, bright))
            a.reset()
            a.landmark(Frame("d", 0, 0.0, dark))
    finally:
        a.close()
    # FaceMesh cuts its crops from a BGRA copy of what it reads (vision.facemesh.for_crops): the same pixels
    assert seen[0].shape[2] == 4 and np.array_equal(seen[0][:, :, :3], bright)
    expected = cv2.GaussianBlur(dark, (3, 3), 0) if blur else dark
    assert np.array_equal(seen[-1][:, :, :3], expected)


def test_low_light_options_are_validated():
    for bad in ({"low_light_blur": 2}, {"low_light_blur": -1}, {"present_min_score_dim": 1.5},
                {"low_light_luma": 300}):
        with pytest.raises(ValueError):
            AudienceOptions(MESH, MTCNN, **bad)


def test_all_faces_map_back_at_once_as_one_by_one():
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 256, (5, 478, 3)).astype(np.float32)
    regions = np.stack([rng.uniform(50, 500, 5), rng.uniform(50, 400, 5), rng.uniform(20, 200, 5),
                        rng.uniform(-0.5, 0.5, 5)], 1).astype(np.float32)
    together = crops_to_frame(points, regions, 640, 480)
    for i in range(5):
        assert np.allclose(together[i], crop_to_frame(points[i], regions[i], 640, 480), atol=1e-6)


def test_blendshapes_are_read_only_through_the_gate():
    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    with native_stderr_to_devnull():
        boxes, _ = MtcnnDetector(MtcnnOptions(*MTCNN)).detect(frame)
        regions = np.concatenate([regions_from_boxes(boxes, 1.5, 0.07), [[50, 50, 40, 0]]]).astype(np.float32)
        with FaceMesh(FaceMeshOptions(*MESH)) as mesh:
            every = mesh.read_regions(frame, regions)
            gated = mesh.read_regions(frame, regions, 0.5)
    through = every.presence >= 0.5
    assert through.sum() == 2 and not through[-1]  # two faces; an empty corner is refused
    assert np.array_equal(every.blendshapes[through], gated.blendshapes[through])
    assert np.isnan(gated.blendshapes[~through]).all()
    assert np.array_equal(every.landmarks, gated.landmarks) and np.array_equal(every.presence, gated.presence)
