"""Motion and confirmation: the Kalman box filter, optimal matching, two-stage association, confirmed
tracks, seats that follow their occupant, and unreadable faces counted as present."""
import numpy as np
import pytest

from builders import make_observation
from vision.describe import describe
from vision.features import face_quality
from vision.motion import BoxKalman, confirmed, match
from vision.seats import SeatTracker
from vision.tracker import FaceTracker


def test_kalman_learns_a_constant_velocity_and_predicts_ahead():
    kf = BoxKalman([0.10, 0.30, 0.10, 0.20], t=0.0)
    for k in range(1, 6):  # moving right by 0.05 per second
        kf.predict(k * 1.0)
        kf.update([0.10 + 0.05 * k, 0.30, 0.10, 0.20])
    ahead = kf.predict(7.0)
    assert ahead[0] == pytest.approx(0.10 + 0.05 * 7, abs=0.01)
    assert ahead[1] == pytest.approx(0.30, abs=0.005) and ahead[3] == pytest.approx(0.20, abs=0.005)
    assert kf.predict(6.0)[0] == pytest.approx(ahead[0])  # never predicts backwards


def test_match_is_optimal_and_gated():
    tracks = np.array([[0.10, 0.3, 0.1, 0.2], [0.22, 0.3, 0.1, 0.2]])
    # greedy on the best single overlap would give face 0 to track 1 and leave track 0 without a face
    faces = np.array([[0.17, 0.3, 0.1, 0.2], [0.27, 0.3, 0.1, 0.2]])
    assert sorted(match(tracks, faces, 0.2, 0.6)) == [(0, 0), (1, 1)]
    assert match(tracks, np.array([[0.8, 0.3, 0.1, 0.2]]), 0.2, 0.6) == []  # too far: no pair
    assert match(tracks, np.zeros((0, 4)), 0.2, 0.6) == []


def test_one_track_or_one_face_matches_as_the_full_assignment():
    """The shortcut for one track or one face (no scipy) picks the pair linear_sum_assignment would."""
    from scipy.optimize import linear_sum_assignment

    from vision.tracker import centre_distance, iou_matrix

    rng = np.random.default_rng(3)
    for _ in range(300):
        n, m = (1, int(rng.integers(1, 6))) if rng.random() < 0.5 else (int(rng.integers(1, 6)), 1)
        tracks = np.c_[rng.uniform(0, 0.8, (n, 2)), rng.uniform(0.05, 0.2, (n, 2))]
        faces = np.c_[rng.uniform(0, 0.8, (m, 2)), rng.uniform(0.05, 0.2, (m, 2))]
        iou, dist = iou_matrix(tracks, faces), centre_distance(tracks, faces)
        allowed = (iou >= 0.2) | (dist <= 0.6)
        cost = np.where(allowed, np.where(iou >= 0.2, 1.0 - iou, 1.0 + dist), 1e6)
        rows, cols = linear_sum_assignment(cost)
        expected = [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]] if allowed.any() else []
        assert match(tracks, faces, 0.2, 0.6) == expected


def test_confirmation_counts_hits_within_the_window():
    assert not confirmed([0.0], 0.0, 2, 1.0)
    assert confirmed([0.0, 0.5], 0.5, 2, 1.0)
    assert not confirmed([0.0, 2.0], 2.0, 2, 1.0)


def test_a_face_seen_once_never_becomes_a_track():
    tr = FaceTracker(confirm_hits=2, confirm_within_s=1.0)
    face = [[0.1, 0.3, 0.1, 0.2]]
    assert tr.update(make_observation(1, t=0.0, boxes=face)).track_ids.tolist() == [1]  # first frame: at once
    blur = [[0.6, 0.5, 0.1, 0.1]]  # something face-like for one frame
    assert tr.update(make_observation(2, t=0.5, boxes=face + blur)).track_ids.tolist() == [1]
    for t in (1.0, 1.5, 2.0, 2.5):
        assert tr.update(make_observation(1, t=t, boxes=face)).track_ids.tolist() == [1]
    # a real newcomer seen twice within a second is confirmed at its second sighting
    new = [[0.6, 0.3, 0.1, 0.2]]
    assert tr.update(make_observation(2, t=3.0, boxes=face + new)).track_ids.tolist() == [1]
    assert tr.update(make_observation(2, t=3.5, boxes=face + new)).track_ids.tolist() == [1, 2]
    with pytest.raises(ValueError):
        FaceTracker(confirm_hits=0)
    with pytest.raises(ValueError):
        FaceTracker(confirm_within_s=-1)


def test_low_score_faces_continue_tracks_but_start_none():
    tr = FaceTracker(high_score=0.9)
    box = [[0.1, 0.3, 0.1, 0.2]]
    tr.update(make_observation(1, t=0.0, boxes=box, det_score=[0.99]))
    # the face blurs (a low detector score): its track goes on
    out = tr.update(make_observation(1, t=0.5, boxes=[[0.11, 0.3, 0.1, 0.2]], det_score=[0.6]))
    assert out.track_ids.tolist() == [1]
    # a low-score face where no track is: dropped, even seen again
    for t in (1.0, 1.5):
        out = tr.update(make_observation(2, t=t, boxes=[[0.11, 0.3, 0.1, 0.2], [0.6, 0.3, 0.1, 0.2]],
                                         det_score=[0.99, 0.6]))
        assert out.track_ids.tolist() == [1]


def test_confident_faces_are_matched_before_less_confident_ones():
    tr = FaceTracker(high_score=0.9, max_jump=1.0)
    tr.update(make_observation(1, t=0.0, boxes=[[0.30, 0.3, 0.1, 0.2]], det_score=[0.99]))
    # a low-score box overlaps the track better than the confident one: the confident face wins
    out = tr.update(make_observation(2, t=0.5, boxes=[[0.30, 0.3, 0.1, 0.2], [0.36, 0.3, 0.1, 0.2]],
                                     det_score=[0.5, 0.99]))
    assert out.track_ids.tolist() == [1] and out.boxes[0, 0] == pytest.approx(0.36)


def test_a_seat_follows_a_slow_zoom_and_keeps_its_viewer():
    tr = SeatTracker(follow_s=2.0)
    first = tr.update(make_observation(2, t=0.0, boxes=[[0.30, 0.40, 0.06, 0.10], [0.60, 0.40, 0.06, 0.10]]))
    assert first.track_ids.tolist() == [1, 2]
    ids = set()
    for k in range(1, 41):  # 20 s at 2 fps: the camera zooms in 1.8x about the frame centre
        z = 1 + 0.8 * k / 40
        boxes = [[0.5 + (0.30 - 0.5) * z, 0.5 + (0.40 - 0.5) * z, 0.06 * z, 0.10 * z],
                 [0.5 + (0.60 - 0.5) * z, 0.5 + (0.40 - 0.5) * z, 0.06 * z, 0.10 * z]]
        visible = boxes if k % 7 else boxes[1:]  # the left viewer looks down now and then
        out = tr.update(make_observation(len(visible), t=k * 0.5, boxes=visible))
        ids.update(out.track_ids.tolist())
    assert ids == {1, 2} and tr.seat_ids == ["L1", "L2"]
    # the seat moved with its occupant: a face back after 4 s hidden lands in it
    seat = tr._seats[0].box
    assert seat[2] > 0.06 * 1.5 * 1.5
    back = tr.update(make_observation(2, t=24.0, boxes=boxes))
    assert back.track_ids.tolist() == [1, 2]


def test_a_one_frame_false_face_learns_no_seat():
    tr = SeatTracker()
    tr.update(make_observation(1, t=0.0, boxes=[[0.1, 0.3, 0.1, 0.2]]))
    tr.update(make_observation(2, t=0.5, boxes=[[0.1, 0.3, 0.1, 0.2], [0.7, 0.1, 0.05, 0.05]]))
    for t in (1.0, 1.5, 2.0):
        tr.update(make_observation(1, t=t, boxes=[[0.1, 0.3, 0.1, 0.2]]))
    assert tr.seat_ids == ["L1"]


def test_an_unreadable_face_is_present_with_attention_0_and_no_expression():
    obs = make_observation(2, t=0.0, boxes=[[0.1, 0.3, 0.1, 0.2], [0.6, 0.3, 0.1, 0.2]],
                           matrices=np.tile(np.eye(4, dtype=np.float32), (2, 1, 1)),
                           probs=np.array([[0, 0, 0, 1, 0, 0, 0], [np.nan] * 7], np.float32),
                           det_score=[0.99, 0.95], readable=[True, False])
    d = describe(obs)
    assert d.attention.tolist() == [1.0, 0.0]
    assert np.isnan(d.metrics[1]).all() and np.isnan(d.pose[1]).all() and np.isnan(d.valence[1])
    assert d.quality[1] == 0 and d.quality[0] == pytest.approx(0.99)  # 72 px, facing the camera
    # the seat stays occupied by the same viewer while the face cannot be read
    tr = SeatTracker()
    assert tr.update(d).track_ids.tolist() == [1, 2]


def test_quality_formula():
    q = face_quality(face_px=[48, 34, 20, 100, 100, 100, 100], det_score=[1, 1, 1, 0.8, np.nan, 1, 1],
                     presence=[np.nan, np.nan, np.nan, 0.5, np.nan, np.nan, np.nan],
                     yaw=[0, 0, 0, 0, 52.5, 80, np.nan], readable=[True] * 6 + [True])
    assert q.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.4, 0.5, 0.0, 0.0])
    assert face_quality([100], [1.0], [1.0], [0.0], [False]).tolist() == [0.0]
