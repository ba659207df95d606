import numpy as np
import pytest

from builders import make_observation
from vision.tracker import FaceTracker, greedy_match, iou_matrix


def test_iou():
    a = np.array([[0, 0, 1, 1]], float)
    b = np.array([[0, 0, 1, 1], [0.5, 0, 1, 1], [2, 2, 1, 1]], float)
    assert iou_matrix(a, b)[0] == pytest.approx([1, 1 / 3, 0])


def test_greedy_match_prefers_best_iou_and_uses_each_side_once():
    iou = np.array([[0.9, 0.5], [0.6, 0.3]])
    dist = np.ones_like(iou)
    assert sorted(greedy_match(iou, dist, 0.2, 0.0)) == [(0, 0), (1, 1)]
    iou = np.array([[0.9, 0.5], [0.6, 0.1]])
    assert greedy_match(iou, dist, 0.2, 0.0) == [(0, 0)]


def moving(t, x0):
    return make_observation(1, t=t, boxes=[[x0 + 0.01 * t, 0.3, 0.1, 0.2]])


def test_ids_stable_while_face_stays():
    tr = FaceTracker(max_lost_s=1.0)
    ids = [int(tr.update(moving(i / 10, 0.2)).track_ids[0]) for i in range(50)]
    assert set(ids) == {1}


def test_two_faces_keep_their_ids_and_a_returning_face_gets_a_new_one():
    tr = FaceTracker(max_lost_s=1.0)
    two = [[0.1, 0.3, 0.1, 0.2], [0.6, 0.3, 0.1, 0.2]]
    first = tr.update(make_observation(2, t=0.0, boxes=two)).track_ids.tolist()
    assert first == [1, 2]
    # right face gone for 0.5 s: comes back with the same id
    tr.update(make_observation(1, t=0.5, boxes=two[:1]))
    assert tr.update(make_observation(2, t=1.0, boxes=two)).track_ids.tolist() == [1, 2]
    # right face gone for 2 s: its track ends, it comes back as a new viewer id
    tr.update(make_observation(1, t=2.0, boxes=two[:1]))
    tr.update(make_observation(1, t=2.8, boxes=two[:1]))
    # ...once confirmed: a new track is emitted from its second sighting (confirm_hits=2) on
    assert tr.update(make_observation(2, t=3.1, boxes=two)).track_ids.tolist() == [1]
    assert tr.update(make_observation(2, t=3.4, boxes=two)).track_ids.tolist() == [1, 3]
    assert 2 in tr.ended


def test_order_of_detections_does_not_matter():
    tr = FaceTracker()
    a, b = [0.1, 0.3, 0.1, 0.2], [0.6, 0.3, 0.1, 0.2]
    tr.update(make_observation(2, t=0, boxes=[a, b]))
    assert tr.update(make_observation(2, t=0.1, boxes=[b, a])).track_ids.tolist() == [2, 1]


def test_low_rate_motion_uses_centre_distance():
    tr = FaceTracker()
    tr.update(make_observation(1, t=0, boxes=[[0.10, 0.3, 0.1, 0.2]]))
    # moved by half a box between analysed frames (IoU 0.14): still the same face
    assert tr.update(make_observation(1, t=1.0, boxes=[[0.16, 0.3, 0.1, 0.2]])).track_ids.tolist() == [1]


def test_reset_and_validation():
    tr = FaceTracker()
    tr.update(moving(0, 0.2))
    tr.reset()
    assert tr.update(moving(5, 0.7)).track_ids.tolist() == [1]
    with pytest.raises(ValueError):
        FaceTracker(max_lost_s=-1)
    with pytest.raises(ValueError):
        FaceTracker(min_iou=0)


def test_update_does_not_mutate_input():
    obs = moving(0, 0.2)
    FaceTracker().update(obs)
    assert obs.track_ids.tolist() == [-1]
