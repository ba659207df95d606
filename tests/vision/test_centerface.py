"""The CenterFace detector wrapper, its conversion from the upstream file, and its recall on real crowds."""
import json

import cv2
import numpy as np
import pytest

from builders import FIXTURES, ROOT, SHARED
from vision.centerface import CenterFaceDetector, CenterFaceOptions, decode
from vision.registry import model_file, sha256_of


@pytest.fixture(scope="module")
def detector():
    d = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path))
    yield d
    d.close()


def test_finds_the_fixture_faces_and_nothing_on_a_blank_frame(detector):
    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    boxes, scores = detector.detect(frame)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32 and boxes.shape == (2, 4)
    assert (scores > 0.5).all()
    assert sorted(((boxes[:, 0] + boxes[:, 2]) / 2 < 320).tolist()) == [False, True]
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 640).all() and (boxes[:, [1, 3]] <= 360).all()
    empty, s = detector.detect(np.full((360, 640, 3), 30, np.uint8))
    assert empty.shape == (0, 4) and s.shape == (0,)


def test_boxes_follow_the_image_through_any_size_and_scale():
    img = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))
    base = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path)).detect(img)[0]
    assert len(base) == 1
    odd = cv2.resize(img, (301, 287))  # not a multiple of 32: padded, not stretched
    small = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path)).detect(odd)[0]
    up = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path, scale=1.5)).detect(odd)[0]
    fx, fy = 301 / img.shape[1], 287 / img.shape[0]
    expected = base[0] * np.array([fx, fy, fx, fy])
    for found in (small, up):
        assert len(found) == 1 and np.abs(found[0] - expected).max() < 0.08 * (expected[3] - expected[1])


def test_decode_places_a_box_at_its_heatmap_peak():
    heat = np.zeros((1, 8, 10), np.float32)
    heat[0, 3, 5] = 0.9
    heat[0, 6, 1] = 0.2  # under the threshold
    size = np.zeros((2, 8, 10), np.float32)
    size[:, 3, 5] = np.log([5.0, 4.0])  # 20 px high, 16 px wide
    offset = np.zeros((2, 8, 10), np.float32)
    offset[:, 3, 5] = [0.25, -0.5]
    boxes, scores = decode(heat, size, offset, 0.5)
    cy, cx = (3 + 0.25 + 0.5) * 4, (5 - 0.5 + 0.5) * 4
    assert boxes.shape == (1, 4) and boxes[0].tolist() == pytest.approx([cx - 8, cy - 10, cx + 8, cy + 10])
    assert scores.tolist() == pytest.approx([0.9])


def test_options_are_validated():
    for bad in ({"threshold": 0.0}, {"threshold": 1.0}, {"scale": 0.1}, {"scale": 5}, {"nms_iou": 0},
                {"max_side": 10}, {"threads": 0}):
        with pytest.raises(ValueError):
            CenterFaceOptions(ROOT / "models" / "centerface.onnx", **bad)


def test_the_shipped_model_is_the_conversion_of_the_upstream_file(tmp_path):
    convert = pytest.importorskip("convert_centerface")
    out = tmp_path / "centerface.onnx"
    assert convert.main([str(ROOT / "models" / "src" / "centerface_bnmerged.onnx"), str(out)]) == 0
    assert sha256_of(out) == model_file("centerface").sha256


@pytest.mark.shared
def test_recall_on_the_first_real_crowds():
    """Golden: the first 20 photos of ../shared/data/crowds at the shipped settings (floors a little under
    what was measured; scripts/bench_crowds.py prints the full table)."""
    from crowds_eval import Score, read_annotations

    folder = SHARED / "data" / "crowds"
    truth = read_annotations(folder / "wider_face_bbx_gt.txt")
    d = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path))
    score = Score(iou=0.3)
    for name in list(truth)[:20]:
        score.add(truth[name], d.detect(cv2.imread(str(folder / "images" / name)))[0])
    r = score.row()
    # measured: readable 0.980 (of 202), valid 0.787 (of 427), 0.60 false positives per image
    assert r["readable"] >= 0.96 and r["valid"] >= 0.75
    assert r["fp/img"] <= 1.5


@pytest.mark.shared
def test_recall_on_the_first_real_crowds_made_dim():
    """Golden: the same photos as a dim grey camera sees them (scripts/make_dim_crowds.py's defaults): the
    low-light mode keeps readable recall within 10 points of the originals'."""
    from crowds_eval import Score, read_annotations
    from make_dim_crowds import dim

    folder = SHARED / "data" / "crowds"
    truth = read_annotations(folder / "wider_face_bbx_gt.txt")
    d = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path))
    score = Score(iou=0.3)
    for name in list(truth)[:20]:
        score.add(truth[name], d.detect(dim(cv2.imread(str(folder / "images" / name)), seed=name))[0])
    r = score.row()
    # measured: readable 0.950, valid 0.705, 1.3 false positives per image
    assert r["readable"] >= 0.93 and r["valid"] >= 0.67
    assert r["fp/img"] <= 2.0


def test_the_setting_chooses_the_audience_detector_and_its_models():
    from vision.pipeline import Settings, model_files

    with pytest.raises(ValueError, match="detector"):
        Settings(detector="yolo")
    assert Settings().detector == "centerface+mtcnn"
    assert {"centerface", "mtcnn_pnet"} <= set(model_files(Settings(scene="audience")))
    audience = set(model_files(Settings(scene="audience", detector="centerface")))
    assert "centerface" in audience and not any(n.startswith("mtcnn") for n in audience)
    assert {"mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"} <= set(model_files(Settings(scene="audience", detector="mtcnn")))
    assert "centerface" not in model_files(Settings(scene="audience", detector="mtcnn"))
    assert "centerface" not in model_files(Settings(scene="single"))
    auto = set(model_files(Settings(scene="auto")))  # the first look is MTCNN's, as before
    assert {"centerface", "mtcnn_pnet"} <= auto


def test_audience_front_end_with_centerface_finds_the_fixture_faces():
    from vision.audience import AudienceLandmarker, AudienceOptions
    from vision.capture import Frame
    from vision.quiet import native_stderr_to_devnull

    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    with native_stderr_to_devnull():
        a = AudienceLandmarker(AudienceOptions((model_file("face_landmarks").path, model_file("face_blendshapes").path),
                                               (None, None, None), threads=1,
                                               detector="centerface", centerface=model_file("centerface").path))
        try:
            faces = a.landmark(Frame("f", 0, 0.0, frame))
        finally:
            a.close()
    assert faces.readable.sum() == 2 and faces.blendshapes[faces.readable].shape == (2, 52)


def test_analyze_with_mtcnn_still_runs(tmp_path):
    from builders import run_cli

    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--scene", "audience", "--detector", "mtcnn", "--fps", "2",
                "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["detector"] == "mtcnn" and "mtcnn_pnet" in summary["models"]
    assert "centerface" not in summary["models"] and summary["faces"] > 0


def test_a_dark_frame_is_searched_in_low_light_mode(detector):
    img = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))
    dark = (img * 0.15).astype(np.uint8)
    assert not detector.is_dim(img) and detector.is_dim(dark)
    assert not CenterFaceDetector(CenterFaceOptions(model_file("centerface").path, low_light_luma=0)).is_dim(dark)
    boxes, scores = detector.detect(dark)
    assert len(boxes) == 1 and scores[0] >= detector.options.low_light_threshold


def test_union_keeps_one_box_per_face_and_the_first_detector_wins():
    from vision.detection import DetectorUnion, build_detector

    class Fixed:
        def __init__(self, boxes, scores):
            self.boxes, self.scores, self.closed = np.array(boxes, np.float32), np.array(scores, np.float32), False

        def detect(self, image):
            return self.boxes, self.scores

        def close(self):
            self.closed = True

    first = Fixed([[0, 0, 10, 10], [50, 50, 60, 60]], [0.5, 0.6])
    second = Fixed([[1, 0, 11, 10], [100, 100, 120, 120]], [0.99, 0.98])
    u = DetectorUnion([first, second])
    boxes, scores = u.detect(None)
    assert boxes.tolist() == [[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 120, 120]]
    assert scores.tolist() == pytest.approx([0.99, 0.6, 0.98])  # the first face: box of one, surest score of both
    empty = DetectorUnion([Fixed(np.zeros((0, 4)), []), Fixed(np.zeros((0, 4)), [])]).detect(None)
    assert empty[0].shape == (0, 4) and empty[1].shape == (0,)
    u.close()
    assert first.closed and second.closed
    with pytest.raises(ValueError):
        build_detector("yolo")
    with pytest.raises(ValueError, match="centerface"):
        build_detector("centerface+mtcnn", mtcnn=(ROOT,) * 3)
    with pytest.raises(ValueError, match="mtcnn"):
        build_detector("mtcnn", centerface=ROOT)
    frame = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4")).read()[1]
    both = build_detector("centerface+mtcnn", centerface=model_file("centerface").path,
                          mtcnn=tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet")))
    assert len(both.detect(frame)[0]) == 2
    both.close()


def test_scores_of_every_detector_share_one_scale_for_the_trackers():
    from vision.detection import CONFIDENT, Rescored

    class Fixed:
        def detect(self, image):
            return np.zeros((5, 4), np.float32), np.array([0.45, 0.6, 0.7, 0.85, 1.0], np.float32)

        def close(self):
            pass

    _, s = Rescored(Fixed(), 0.7).detect(None)
    assert s[2] == pytest.approx(CONFIDENT) and s[-1] == pytest.approx(1.0)
    assert np.all(np.diff(s) > 0) and s[1] < CONFIDENT < s[3]  # monotone: the order of faces is kept
    with pytest.raises(ValueError):
        Rescored(Fixed(), 1.0)

