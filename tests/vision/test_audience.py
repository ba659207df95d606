"""The audience front end: MTCNN, region geometry, and the whole scene on a synthetic audience."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from builders import FIXTURES, ROOT, SHARED, run_cli
from vision.audience import square_regions
from vision.facemesh import crop_to_frame, regions_from_boxes
from vision.detector import MtcnnDetector, MtcnnOptions, nms
from vision.registry import model_file

MESH = (model_file("face_landmarks").path, model_file("face_blendshapes").path)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], float)
    assert sorted(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist()) == [0, 2]
    assert sorted(nms(boxes, np.array([0.1, 0.8, 0.7]), 0.5).tolist()) == [1, 2]
    # a box inside a bigger one: kept by IoU, dropped by intersection-over-minimum
    inner = np.array([[0, 0, 20, 20], [2, 2, 8, 8]], float)
    assert len(nms(inner, np.array([0.9, 0.8]), 0.5)) == 2
    assert len(nms(inner, np.array([0.9, 0.8]), 0.5, by_min=True)) == 1
    assert len(nms(np.zeros((0, 4)), np.zeros(0), 0.5)) == 0


def test_square_regions_and_mapping_back_to_the_frame():
    boxes = np.array([[100, 50, 140, 110]], float)  # 40 x 60 face
    region = square_regions(boxes, 2.0, 640, 360)[0]
    assert region.tolist() == [60.0, 20.0, 120.0]
    # a landmark at the centre of the 256 px crop read around the box (no shift) lands at the box centre
    read = regions_from_boxes(boxes, 2.0, 0.0)[0]
    assert read.tolist() == [120.0, 80.0, 120.0, 0.0]
    back = crop_to_frame(np.array([[128, 128, 25.6]], np.float32), read, 640, 360)[0]
    assert back[0] * 640 == pytest.approx(120) and back[1] * 360 == pytest.approx(80)
    assert back[2] == pytest.approx(0.1 * 120 / 640)


def test_mtcnn_finds_the_fixture_faces():
    files = [model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet")]
    det = MtcnnDetector(MtcnnOptions(*files))
    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    boxes, scores = det.detect(frame)
    assert len(boxes) == 2 and (scores > 0.9).all()
    assert sorted(((boxes[:, 0] + boxes[:, 2]) / 2 < 320).tolist()) == [False, True]
    empty, _ = det.detect(np.full((360, 640, 3), 30, np.uint8))
    assert len(empty) == 0
    with pytest.raises(ValueError):
        MtcnnOptions(*files, min_face=5)


def test_two_threads_give_the_same_landmarks_as_one():
    from vision.audience import AudienceLandmarker, AudienceOptions
    from vision.capture import Frame
    from vision.quiet import native_stderr_to_devnull

    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    wide = np.concatenate([frame, frame[:, ::-1]], axis=1)
    results = []
    with native_stderr_to_devnull():
        for threads in (1, 2):
            a = AudienceLandmarker(AudienceOptions(MESH,
                                                   tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet")),
                                                   threads=threads))
            try:
                results.append(a.landmark(Frame("w", 0, 0.0, wide)))
            finally:
                a.close()
    assert len(results[0][0]) == 4 and (results[0].presence >= 0.5).all()
    for one, two in zip(results[0], results[1]):
        assert np.array_equal(one, two, equal_nan=True)


def test_audience_scene_on_the_fixture_video(tmp_path):
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--scene", "audience", "--fps", "5", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    obs = pd.read_parquet(tmp_path / "observations.parquet")
    left = obs[obs["x"] < 0.45]
    assert left["track_id"].nunique() == 1 and len(left) == 25
    assert left["seat"].nunique() == 1 and left["seat"].iloc[0].startswith("L")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["scene"] == "audience" and "mtcnn_pnet" in summary["models"]
    assert summary["settings"]["detector"] == "centerface+mtcnn" and "centerface" in summary["models"]


@pytest.mark.shared
def test_synthetic_audience_recall_ids_and_happiness_curve(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_audience.py"), str(SHARED / "data" / "expressions"),
                    "--out", str(tmp_path), "--seats", "12", "--seconds", "12", "--seed", "3"],
                   check=True, capture_output=True)
    r = run_cli("analyze", tmp_path / "audience.avi", "--scene", "audience", "--fps", "2", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    import bench_audience

    m = bench_audience.evaluate(tmp_path, 2.0)
    assert m["recall"] >= 0.95
    assert m["duplicate_rate"] == 0 and m["false_positive_rate"] <= 0.01
    assert m["id_switches"] == 0
    assert m["happiness_r"] >= 0.8


def test_auto_scene_picks_by_the_first_frame(tmp_path):
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--fps", "2", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "a" / "summary.json").read_text())["settings"]
    assert s["scene"] == "single" and s["scene_reason"].startswith("auto: 2 face(s)") and s["max_faces"] == 8
    # three copies of the fixture's faces side by side and smaller: an audience
    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    wide = np.concatenate([frame] * 3, axis=1)
    wide = np.concatenate([wide, wide], axis=0)
    cv2.imwrite(str(tmp_path / "wide.png"), wide)
    r = run_cli("analyze", tmp_path / "wide.png", "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert s["settings"]["scene"] == "audience" and s["faces"] == 12


def test_audience_scene_defaults_to_two_analysed_frames_per_second(tmp_path):
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--scene", "audience", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["fps"] == 2.0 and summary["frames_analysed"] == 10


@pytest.fixture(scope="module")
def walkers(tmp_path_factory):
    out = tmp_path_factory.mktemp("walkers")
    r = run_cli("analyze", SHARED / "data" / "video" / "walkers_1080p.mp4", "--scene", "audience", "--out", out)
    assert r.returncode == 0, r.stderr
    return pd.read_parquet(out / "observations.parquet"), json.loads((out / "summary.json").read_text())


@pytest.mark.shared
def test_walkers_every_analysed_frame_has_faces_and_ids_hold(walkers):
    obs, summary = walkers
    assert summary["frames_analysed"] >= 8
    assert obs["frame"].nunique() == summary["frames_analysed"]  # no analysed frame without a face
    assert obs["track_id"].nunique() <= 10 and (obs["track_id"] > 0).all()
    assert 0 < summary["coverage"]["read_share"] <= 1


@pytest.mark.shared
def test_walkers_median_analysed_frame_has_six_faces(walkers):
    obs, _ = walkers
    assert obs.groupby("frame").size().median() >= 6


@pytest.mark.shared
def test_face_noface_gives_no_track_after_the_face_leaves(tmp_path):
    r = run_cli("analyze", SHARED / "data" / "video" / "face_noface.mov", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    obs = pd.read_parquet(tmp_path / "observations.parquet")
    assert obs["track_id"].nunique() == 1  # blurred title text later on never becomes a track
    assert obs["t"].max() < 3.0 and json.loads((tmp_path / "summary.json").read_text())["tracks"] == 1


def test_a_face_that_leaves_its_crop_is_found_again_on_the_same_frame():
    from vision.audience import AudienceLandmarker, AudienceOptions
    from vision.capture import Frame
    from vision.quiet import native_stderr_to_devnull

    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    files = tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet"))
    det = MtcnnDetector(MtcnnOptions(*files))
    boxes, _ = det.detect(frame)
    x1, y1, x2, y2 = boxes[0].astype(int)
    side = max(x2 - x1, y2 - y1)
    face = frame[max(y1 - side, 0):y2 + side, max(x1 - side, 0):x2 + side]

    def placed(x):  # the face on a dark 1280x720 canvas, its patch's left edge at x
        canvas = np.full((720, 1280, 3), 40, np.uint8)
        canvas[200:200 + face.shape[0], x:x + face.shape[1]] = face
        return canvas

    with native_stderr_to_devnull():
        a = AudienceLandmarker(AudienceOptions(MESH, files, detect_every_s=100.0,
                                               threads=1))
        try:
            first = a.landmark(Frame("m", 0, 0.0, placed(100)))
            # the face moved 1.2 face widths: out of its crop; the next full detection is 100 s away
            second = a.landmark(Frame("m", 1, 0.5, placed(100 + int(1.2 * side))))
            gone = a.landmark(Frame("m", 2, 1.0, np.full((720, 1280, 3), 40, np.uint8)))
        finally:
            a.close()
    assert len(first.boxes) == 1 and first.readable.all() and first.det_score[0] > 0.9
    assert 0.5 <= first.presence[0] <= 1  # the landmark model's presence score, through the gate
    assert len(second.boxes) == 1 and second.readable.all()
    moved = (second.boxes[0, 0] - first.boxes[0, 0]) * 1280
    assert moved == pytest.approx(1.2 * side, abs=0.25 * side)
    assert len(gone.boxes) == 0


@pytest.mark.shared
def test_front_end_recall_on_the_first_real_crowd_photos():
    """The shipped front end (detector + FaceMesh + presence gate) on the first 25 photos of
    ../shared/data/crowds, each one frame, and on their dim grey variant (scripts/make_dim_crowds.py):
    floors a little under what was measured (README)."""
    import bench_crowds

    from vision.quiet import native_stderr_to_devnull

    with native_stderr_to_devnull():
        rows = {r["candidate"]: r for r in bench_crowds.run(SHARED / "data" / "crowds", ["front end"], 25, True)}
    read, seen = rows["front end [read]"], rows["front end [read+present]"]
    # measured: read 0.759 of the readable faces (0.776 with the second look from a first presence of 0.01: the
    # floor moved to 0.05 for the per-face cost target, README); read or present 0.957 of the readable, 0.719 of
    # the valid, 0.20 false positives per photo
    assert read["readable"] >= 0.74 and seen["readable"] >= 0.92
    assert seen["valid"] >= 0.68 and seen["fp/img"] <= 0.4
    dim_read, dim_seen = rows["front end [read] (dim)"], rows["front end [read+present] (dim)"]
    # measured on the dim variant: read 0.711, read or present 0.918 (3.9 points under the originals), valid
    # 0.661, 0.44 false positives per photo
    assert dim_read["readable"] >= 0.68 and dim_seen["readable"] >= 0.89
    assert seen["readable"] - dim_seen["readable"] <= 0.07
    assert dim_seen["valid"] >= 0.63 and dim_seen["fp/img"] <= 0.6


def _fixture_face():
    """The first face of the two-face fixture, with a face's width of margin around it."""
    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    det = MtcnnDetector(MtcnnOptions(*(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet"))))
    x1, y1, x2, y2 = det.detect(frame)[0][0].astype(int)
    side = max(x2 - x1, y2 - y1)
    return frame[max(y1 - side, 0):y2 + side, max(x1 - side, 0):x2 + side]


def test_detection_backs_off_while_nothing_changes_and_comes_back_for_a_new_face():
    from vision.audience import AudienceLandmarker, AudienceOptions
    from vision.capture import Frame
    from vision.quiet import native_stderr_to_devnull

    face = _fixture_face()

    def canvas(faces):
        c = np.full((720, 1280, 3), 40, np.uint8)
        for x in faces:
            c[100:100 + face.shape[0], x:x + face.shape[1]] = face
        return c

    files = tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet"))
    found_at = {}
    for backoff in (3.0, 1.0):
        with native_stderr_to_devnull():
            a = AudienceLandmarker(AudienceOptions(MESH, files, detect_every_s=1.0, detect_backoff=backoff, threads=1))
            detector, times, counts = a._detector, [], []

            class Counted:  # the full-frame detections (a search around a lost face would pass a part)
                def detect(self, image):
                    if image.shape[:2] == (720, 1280):
                        times.append(t)
                    return detector.detect(image)

            a._detector = Counted()
            try:
                for k in range(21):  # 0 .. 10 s every 0.5 s; a second viewer sits down at 6.5 s
                    t = k * 0.5
                    counts.append(len(a.landmark(Frame("b", k, t, canvas([100] + ([700] if t >= 6.5 else [])))).boxes))
            finally:
                a._detector = detector
                a.close()
        found_at[backoff] = (times, counts)
    times, counts = found_at[3.0]
    # waits 1, 2, 3 (capped at 3 x 1 s), 3; the newcomer found at 9 s brings the wait back to 1 s
    assert times == [0.0, 1.0, 3.0, 6.0, 9.0, 10.0]
    assert counts[:13] == [1] * 13 and counts[18:] == [2] * 3
    times, counts = found_at[1.0]
    assert times == [float(s) for s in range(11)] and counts[14:] == [2] * 7


def test_second_look_only_from_its_presence_floor():
    from vision.audience import AudienceLandmarker, AudienceOptions
    from vision.facemesh import FaceMeshReadings
    from vision.quiet import native_stderr_to_devnull

    presence = np.array([0.9, 0.3, 0.02, 0.005, 0.0], np.float32)
    n = len(presence)
    first = FaceMeshReadings(np.random.default_rng(0).uniform(0.2, 0.3, (n, 478, 3)).astype(np.float32),
                             np.zeros((n, 52), np.float32), presence, np.tile([[100, 100, 50, 0]], (n, 1)).astype(np.float32))
    files = tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet"))
    image = np.zeros((480, 640, 3), np.uint8)
    looked = {}
    for floor in (0.0, 0.01, 0.5):
        with native_stderr_to_devnull():
            a = AudienceLandmarker(AudienceOptions(MESH, files, threads=1, second_look_min=floor))
        regions = []

        def read(image, r):
            regions.append(len(r))
            return FaceMeshReadings(first.landmarks[:len(r)], first.blendshapes[:len(r)],
                                    np.full(len(r), 0.8, np.float32), np.asarray(r, np.float32))

        a._read = read
        try:
            out = a._second_look(image, first, np.ones(n, bool))
            looked[floor] = (regions[:], out.presence)
            a._second_look(image, first, np.ones(n, bool), dim=True)  # a dim frame: from any presence (default)
            assert regions[len(looked[floor][0]):] == [3]
        finally:
            a.close()
    assert looked[0.0][0] == [3]  # every refused reading with a presence above 0
    assert looked[0.01][0] == [2]  # 0.3 and 0.02: 0.005 is under the floor
    np.testing.assert_array_equal(looked[0.01][1], np.float32([0.9, 0.8, 0.8, 0.005, 0.0]))
    assert looked[0.5][0] == []  # none
    with pytest.raises(ValueError):
        AudienceOptions(MESH, files, second_look_min=1.5)
    with pytest.raises(ValueError):
        AudienceOptions(MESH, files, detect_backoff=0.5)
