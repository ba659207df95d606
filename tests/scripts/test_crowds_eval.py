"""The crowd-recall scoring (scripts/crowds_eval.py) on tiny synthetic annotations, and the dim variant."""
import numpy as np
import pytest

from crowds_eval import BANDS, Score, annotation, band_index, iou_matrix, match, read_annotations
from make_dim_crowds import dim


def row(x, y, w, h, blur=0, invalid=0, occlusion=0, pose=0):
    return [x, y, w, h, blur, 0, 0, invalid, occlusion, pose]


def test_reads_the_wider_layout_including_an_image_without_faces(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("a.jpg\n2\n10 20 30 40 1 0 0 0 2 0 \n0 0 5 5 2 0 0 1 0 1 \nb.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n"
                 "c.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n")
    a = read_annotations(p)
    assert list(a) == ["a.jpg", "b.jpg", "c.jpg"]
    assert a["a.jpg"].boxes.tolist() == [[10, 20, 40, 60], [0, 0, 5, 5]]
    assert a["a.jpg"].blur.tolist() == [1, 2] and a["a.jpg"].invalid.tolist() == [0, 1]
    assert a["a.jpg"].occlusion.tolist() == [2, 0] and a["a.jpg"].pose.tolist() == [0, 1]
    assert len(a["b.jpg"].boxes) == 0 and len(a["c.jpg"].boxes) == 1


def test_valid_and_readable_follow_the_wider_flags_and_the_size_range():
    a = annotation([row(0, 0, 20, 19), row(0, 0, 20, 20), row(0, 0, 20, 150), row(0, 0, 20, 151),
                    row(0, 0, 30, 40, invalid=1), row(0, 0, 30, 40, occlusion=1), row(0, 0, 30, 40, pose=1),
                    row(0, 0, 30, 40, blur=1), row(0, 0, 30, 40, blur=2)])
    assert a.valid.tolist() == [False, True, True, False, False, True, True, True, True]
    assert a.readable.tolist() == [False, True, True, False, False, False, False, True, False]
    assert band_index(np.array([19, 20, 31, 31.5, 32, 47, 48, 79, 80, 150, 150.5, 151])).tolist() == \
        [-1, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, -1]


def test_iou():
    m = iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert m[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    assert iou_matrix(np.zeros((0, 4)), np.zeros((2, 4))).shape == (0, 2)


def test_one_detection_finds_one_face_and_false_positives_overlap_no_face():
    truth = np.array([[0, 0, 10, 10], [12, 0, 22, 10], [100, 100, 104, 104]], float)
    dets = np.array([[1, 0, 11, 10],        # best on face 0, a little on face 1 (IoU < 0.3)
                     [0, 0, 10, 10],        # exactly face 0: takes it, so the first one goes unmatched
                     [100, 100, 104, 105],  # the tiny (unscored) face: neither a find that counts nor an FP
                     [50, 50, 60, 60]])     # nothing there: a false positive
    found, fp = match(truth, dets, 0.3)
    assert found.tolist() == [True, False, True]
    assert fp.tolist() == [False, False, False, True]  # a duplicate on a face is not a false positive
    found, fp = match(np.zeros((0, 4)), dets, 0.3)
    assert len(found) == 0 and fp.all()
    found, fp = match(truth, np.zeros((0, 4)), 0.3)
    assert not found.any() and len(fp) == 0


def test_greedy_matching_prefers_the_higher_overlap():
    truth = np.array([[0, 0, 20, 20], [10, 0, 30, 20]], float)
    dets = np.array([[9, 0, 29, 20], [2, 0, 22, 20]], float)  # each sits best on a different face
    found, fp = match(truth, dets, 0.3)
    assert found.all() and not fp.any()


def test_score_counts_by_band_and_by_readability():
    truth = annotation([row(0, 0, 20, 25), row(100, 0, 40, 40, pose=1), row(200, 0, 60, 60), row(300, 0, 90, 100),
                        row(500, 0, 10, 10)])
    s = Score(iou=0.3)
    s.add(truth, np.array([[0, 0, 20, 25], [200, 0, 260, 60], [600, 600, 640, 640]]), seconds=0.5)
    s.add(annotation([]), np.zeros((0, 4)), seconds=0.1)
    r = s.row()
    assert r["valid"] == pytest.approx(2 / 4) and r["readable"] == pytest.approx(2 / 3)
    assert [r[f"valid {lo}-{hi}"] for lo, hi in BANDS] == [1.0, 0.0, 1.0, 0.0]
    assert np.isnan(r["read 32-47"]) and r["read 80-150"] == 0.0
    assert r["fp/img"] == pytest.approx(0.5) and r["ms/img"] == pytest.approx(300)


def test_dim_variant_is_grey_darker_noisy_and_repeatable():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = dim(img, seed="a.jpg")
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out.mean() < 0.5 * img.mean()
    assert np.array_equal(out, dim(img, seed="a.jpg")) and not np.array_equal(out, dim(img, seed="b.jpg"))
    flat = dim(np.full((200, 200, 3), 255, np.uint8), noise=4.0)
    assert flat.mean() == pytest.approx(255 * 0.45, abs=1) and flat.std() == pytest.approx(4, abs=0.5)


def test_bench_crowds_prints_one_table_for_a_tiny_crowd(tmp_path, capsys):
    import shutil

    import cv2

    from builders import FIXTURES
    import bench_crowds

    (tmp_path / "images").mkdir()
    shutil.copy(FIXTURES / "images" / "astronaut.jpg", tmp_path / "images" / "a.jpg")
    img = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))
    from vision.centerface import CenterFaceDetector, CenterFaceOptions
    from vision.registry import model_file

    x1, y1, x2, y2 = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path)).detect(img)[0][0]
    (tmp_path / "wider_face_bbx_gt.txt").write_text(
        f"a.jpg\n1\n{x1:.0f} {y1:.0f} {x2 - x1:.0f} {min(y2 - y1, 150):.0f} 0 0 0 0 0 0 \n")
    assert bench_crowds.main([str(tmp_path), "--dim", "--only", "centerface (shipped)",
                              "--json", str(tmp_path / "rows.json")]) == 0
    out = capsys.readouterr().out
    assert "| centerface (shipped) | 1.000 | 1.000 |" in out and "(dim)" in out and "dim loses" in out
    assert bench_crowds.main([str(tmp_path), "--only", "nope"]) == 2
    assert bench_crowds.main([str(tmp_path / "missing")]) == 3
