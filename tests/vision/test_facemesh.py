"""FaceMesh (MediaPipe's landmark and blendshape models on detector crops) and PnP head pose.

The comparison with MediaPipe is like with like: MediaPipe's landmarker in VIDEO mode, given the same
image twice, landmarks the second frame on its own tracking ROI built from the first frame's landmarks,
with no detector run and no smoothing when it tracks as many faces as `num_faces` and that is more than
one (a single face is shown twice, side by side). FaceMesh reads the same ROIs
(`regions_from_landmarks` of the first frame's landmarks); its landmarks and blendshapes must equal
MediaPipe's second frame within 1 px at 256 px and 0.02.
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from builders import FIXTURES, SHARED
from vision.facemesh import (BLENDSHAPE_LANDMARKS, CROP_SIZE, FaceMesh, FaceMeshOptions, crop_matrices,
                             regions_from_boxes, regions_from_landmarks)
from vision.features import head_pose as pose_from_matrices
from vision.headpose import CANONICAL_POINTS, PNP_LANDMARKS, camera_matrix, head_pose
from vision.landmarker import result_to_arrays
from vision.registry import model_file, models_dir, sha256_of

LANDMARK_TOLERANCE_PX = 1.0  # at 256 px
BLENDSHAPE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh(FaceMeshOptions(model_file("face_landmarks").path, model_file("face_blendshapes").path)) as m:
        yield m


def mediapipe_two_frames(image_bgr):
    """MediaPipe on the image shown twice side by side, as two VIDEO frames: (image, landmarks of frame 0,
    landmarks and blendshapes of frame 1), or None when MediaPipe does not track every face it found."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    image = cv2.hconcat([image_bgr, image_bgr])
    rgb = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    task_path = str(model_file("face_landmarker").path)

    def task(mode, n):
        return vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=task_path), running_mode=mode, num_faces=n,
            output_face_blendshapes=True))

    with task(vision.RunningMode.IMAGE, 40) as probe:
        n = len(probe.detect(rgb).face_landmarks)
    if n < 2:
        return None
    with task(vision.RunningMode.VIDEO, n) as video:
        first = result_to_arrays(video.detect_for_video(rgb, 0))
        second = result_to_arrays(video.detect_for_video(rgb, 1))
    if len(first[0]) != n or len(second[0]) != n:
        return None
    return image, first[0], second[0], second[1]


def check_against_mediapipe(mesh, image_bgr):
    ref = mediapipe_two_frames(image_bgr)
    if ref is None:
        return 0
    image, first, landmarks, blendshapes = ref
    h, w = image.shape[:2]
    ours = mesh.read_regions(image, regions_from_landmarks(first, w, h))
    for k in range(len(ours)):  # MediaPipe's order of faces may change between frames: pair by position
        j = int(np.argmin(np.abs(landmarks[:, 1, :2] - ours.landmarks[k, 1, :2]).sum(axis=1)))
        at_256 = CROP_SIZE / ours.regions[k, 2]
        err = np.hypot((ours.landmarks[k, :, 0] - landmarks[j, :, 0]) * w,
                       (ours.landmarks[k, :, 1] - landmarks[j, :, 1]) * h) * at_256
        assert err.max() <= LANDMARK_TOLERANCE_PX, (k, err.max())
        assert np.abs(ours.blendshapes[k] - blendshapes[j]).max() <= BLENDSHAPE_TOLERANCE
        assert ours.presence[k] > 0.9
    return len(ours)


def test_extracted_models_match_their_pins(tmp_path):
    from extract_face_models import extract, main

    written = extract(models_dir() / "face_landmarker.task", tmp_path)
    registry = json.loads((models_dir() / "models.json").read_text())
    card = (models_dir() / "face_mesh_models.md").read_text()
    for name, (file, sha) in written.items():
        assert registry[name]["sha256"] == sha == sha256_of(tmp_path / file)
        assert file in card and sha in card
    assert main(["--out", str(tmp_path)]) == 0


def test_canonical_face_constants_match_the_task():
    from extract_face_models import canonical_face

    vertices, basis = canonical_face(models_dir() / "face_landmarker.task")
    assert set(PNP_LANDMARKS) <= set(basis[:, 0].astype(int))
    np.testing.assert_allclose(CANONICAL_POINTS, vertices[list(PNP_LANDMARKS)], atol=1e-5)


def test_facemesh_matches_mediapipe_on_fixture_images(mesh):
    faces = sum(check_against_mediapipe(mesh, cv2.imread(str(p))) for p in sorted((FIXTURES / "images").glob("*.jpg")))
    assert faces >= 4


def test_read_on_detector_boxes_finds_faces_and_rejects_empty_crops(mesh):
    image = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))
    h, w = image.shape[:2]
    first = mediapipe_two_frames(image)[1]
    left = first[np.argmin(first[:, 1, 0])][:, :2] * (2 * w, h)  # the left copy, in the image's pixels
    box = np.concatenate([left.min(0), left.max(0)])[None].astype(np.float32)
    blank = np.array([[0, 0, 40, 40]], np.float32) + [w - 41, h - 41, w - 41, h - 41]
    flat = image.copy()
    flat[h - 60:, w - 60:] = 128
    r = mesh.read(flat, np.concatenate([box, blank]))
    assert len(r) == 2 and r.landmarks.shape == (2, 478, 3) and r.blendshapes.shape == (2, 52)
    assert r.presence[0] > 0.9 > 0.2 > r.presence[1]
    err = np.hypot(*((r.landmarks[0, :, :2] * (w, h) - left).T)) * CROP_SIZE / r.regions[0, 2]
    assert np.median(err) < 3 and np.all((r.blendshapes >= 0) & (r.blendshapes <= 1))
    assert len(mesh.read(image, np.zeros((0, 4)))) == 0


def test_crop_geometry_round_trips():
    regions = np.array([[100, 80, 64, 0.3], [10, 20, 256, -0.5]], np.float32)
    m = crop_matrices(regions)
    corners = np.array([[0, 0], [CROP_SIZE, CROP_SIZE]], np.float64)
    for r, a in zip(regions, m):
        inv = cv2.invertAffineTransform(a)
        centre = inv @ [CROP_SIZE / 2, CROP_SIZE / 2, 1]
        np.testing.assert_allclose(centre, r[:2], atol=1e-4)
        p = np.c_[corners, np.ones(2)] @ inv.T
        assert math.isclose(np.hypot(*(p[1] - p[0])), r[2] * math.sqrt(2), rel_tol=1e-5)
    boxes = np.array([[10, 20, 30, 60]], np.float32)
    np.testing.assert_allclose(regions_from_boxes(boxes, 2.0, 0.0), [[20, 40, 80, 0]])
    assert len(BLENDSHAPE_LANDMARKS) == 146 and max(BLENDSHAPE_LANDMARKS) == 477


def test_options_are_validated_and_close_is_final(tmp_path):
    with pytest.raises(ValueError, match="runtime"):
        FaceMeshOptions(tmp_path, tmp_path, runtime="tpu")
    with pytest.raises(ValueError, match="box_scale"):
        FaceMeshOptions(tmp_path, tmp_path, box_scale=0)
    m = FaceMesh(FaceMeshOptions(model_file("face_landmarks").path, model_file("face_blendshapes").path))
    m.close()
    m.close()
    with pytest.raises(RuntimeError, match="closed"):
        m.read(np.zeros((10, 10, 3), np.uint8), np.array([[0, 0, 5, 5]]))


def _rotation(yaw, pitch, roll):
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, 0, 0), (-25, 10, 5), (10, -20, -15), (-40, 15, 20)])
def test_pnp_recovers_the_pose_of_a_rotated_canonical_face(angles):
    w, h = 640, 360
    k = camera_matrix(w, h)
    rotation = _rotation(*angles)
    expected = np.eye(4)
    expected[:3, :3] = rotation
    cam = CANONICAL_POINTS @ rotation.T + [3.0, -2.0, -60.0]  # MediaPipe's camera frame: the face in front, z < 0
    x = k[0, 2] + k[0, 0] * cam[:, 0] / -cam[:, 2]
    y = k[1, 2] - k[1, 1] * cam[:, 1] / -cam[:, 2]
    landmarks = np.zeros((1, 478, 3), np.float32)
    landmarks[0, list(PNP_LANDMARKS), 0], landmarks[0, list(PNP_LANDMARKS), 1] = x / w, y / h
    got = head_pose(landmarks, w, h)[0]
    np.testing.assert_allclose(got, pose_from_matrices(expected[None])[0], atol=0.2)
    np.testing.assert_allclose(got, angles, atol=0.2)


def _video_frames(path, every):
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if i % every == 0:
                yield i, frame
            i += 1
    finally:
        cap.release()


@pytest.mark.shared
def test_facemesh_matches_mediapipe_on_shared_video_frames(mesh):
    videos = sorted((SHARED / "data" / "video").glob("*.mp4"))
    assert videos
    faces = 0
    for video in videos:
        frames = [f for _, f in _video_frames(video, 1)]
        for frame in frames[:: max(1, len(frames) // 3)][:3]:
            faces += check_against_mediapipe(mesh, frame)
    assert faces >= 10


@pytest.mark.shared
@pytest.mark.parametrize("name", ["WolfgangLanger_Pexels.mp4", "single_face.mp4"])
def test_pnp_pose_agrees_with_mediapipe_matrix_pose(name):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_file("face_landmarker").path)),
        running_mode=vision.RunningMode.VIDEO, num_faces=1, output_facial_transformation_matrixes=True)
    ours, theirs = [], []
    with vision.FaceLandmarker.create_from_options(options) as task:
        for i, frame in _video_frames(SHARED / "data" / "video" / name, 5):
            image = mp.Image(image_format=mp.ImageFormat.SRGB,
                             data=np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
            landmarks, _, matrices = result_to_arrays(task.detect_for_video(image, i * 40))
            if len(landmarks):
                ours.append(head_pose(landmarks, frame.shape[1], frame.shape[0])[0])
                theirs.append(pose_from_matrices(matrices)[0])
    assert len(ours) >= 10
    err = np.abs(np.asarray(ours) - np.asarray(theirs))
    assert (np.median(err, axis=0) <= 3.0).all(), np.median(err, axis=0)


def test_onnx_copies_read_like_litert():
    image = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))
    first = mediapipe_two_frames(image)[1]
    left = first[np.argmin(first[:, 1, 0])][:, :2] * (2 * image.shape[1], image.shape[0])
    box = np.concatenate([left.min(0), left.max(0)])[None].astype(np.float32)
    with FaceMesh(FaceMeshOptions(model_file("face_landmarks").path, model_file("face_blendshapes").path)) as a, \
            FaceMesh(FaceMeshOptions(model_file("face_landmarks_onnx").path, model_file("face_blendshapes_onnx").path,
                                     runtime="onnx")) as b:
        ra, rb = a.read(image, box), b.read(image, box)
    at_256 = CROP_SIZE / ra.regions[0, 2]
    assert np.abs((ra.landmarks - rb.landmarks)[0, :, :2] * image.shape[1::-1]).max() * at_256 < 0.01
    assert np.abs(ra.blendshapes - rb.blendshapes).max() < 1e-4 and abs(ra.presence[0] - rb.presence[0]) < 1e-4
    assert ra.presence[0] > 0.9


def test_presence_evaluation_labels_detections(tmp_path):
    from eval_presence import label_detections, read_wider

    gt = tmp_path / "gt.txt"
    gt.write_text("a/x.jpg\n3\n10 10 30 40 0 0 0 0 0 0\n100 10 30 40 0 0 0 1 0 0\n200 10 10 10 0 0 0 0 0 0\n"
                  "b/y.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n")
    truth = read_wider(gt)
    assert set(truth) == {"x.jpg", "y.jpg"} and truth["x.jpg"].shape == (3, 5) and len(truth["y.jpg"]) == 0
    boxes = np.array([[12, 12, 40, 50], [100, 10, 130, 50], [300, 300, 340, 340], [200, 10, 210, 20]], np.float64)
    assert label_detections(boxes, truth["x.jpg"]).tolist() == [1, -1, 0, -1]  # invalid and too small: neither
    assert label_detections(boxes[:1], truth["y.jpg"]).tolist() == [0]


def test_crops_from_a_bgra_frame_read_exactly_like_bgr_and_the_gate_skips_blendshapes(mesh):
    from vision.facemesh import for_crops

    image = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))
    h, w = image.shape[:2]
    first = mediapipe_two_frames(image)[1]
    left = first[np.argmin(first[:, 1, 0])][:, :2] * (2 * w, h)
    box = np.concatenate([left.min(0), left.max(0)]).astype(np.float32)
    boxes = np.stack([box, box + [w - 41 - box[0], h - 41 - box[1]] * 2,
                      box + [3, -2, 3, -2]]).astype(np.float32)  # a face, a corner, the face shifted
    regions = regions_from_boxes(boxes)
    regions[2, 3] = 0.3  # turned
    bgra = for_crops(image)
    assert bgra.shape == (h, w, 4) and for_crops(bgra) is bgra
    bgr_read = mesh.read_regions(image, regions[:2])  # two regions: cut from the BGR frame as it is
    for bgra_read in (mesh.read_regions(bgra, regions[:2]), mesh.read_regions(image, regions)[:2]):
        for f in ("landmarks", "blendshapes", "presence", "regions"):
            assert np.array_equal(getattr(bgr_read, f), getattr(bgra_read, f), equal_nan=True), f
    gated = mesh.read_regions(bgra, regions, min_presence=0.5)
    read = gated.presence >= 0.5
    assert read[0] and not read[1]
    assert np.isfinite(gated.blendshapes[read]).all() and np.isnan(gated.blendshapes[~read]).all()
