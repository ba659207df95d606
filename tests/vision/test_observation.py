import numpy as np
import pytest

from builders import make_observation
from vision.observation import Observation


def test_defaults_and_lengths():
    obs = make_observation(3)
    assert len(obs) == 3
    assert obs.probs.shape == (3, 7) and np.isnan(obs.probs).all()
    assert (obs.track_ids == -1).all()
    assert obs.emotions == ["", "", ""]


def test_arrays_are_read_only_and_replace_leaves_input_alone():
    obs = make_observation(2)
    with pytest.raises(ValueError):
        obs.boxes[0, 0] = 1.0
    new = obs.replace(track_ids=np.array([5, 6]))
    assert (obs.track_ids == -1).all() and list(new.track_ids) == [5, 6]


def test_view_inputs_are_copied_not_frozen_in_place():
    base = np.zeros((4, 4), np.float32)
    obs = make_observation(2, boxes=base[:2])
    base[0, 0] = 9.0  # the caller's buffer stays writable and does not leak into the observation
    assert obs.boxes[0, 0] == 0.0


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="probs"):
        make_observation(2, probs=np.zeros((3, 7)))


def test_select_and_empty():
    obs = make_observation(3, track_ids=np.array([1, 2, 3]))
    assert list(obs.select(np.array([True, False, True])).track_ids) == [1, 3]
    empty = Observation.empty("s", 0, 0.0, 10, 10)
    assert len(empty) == 0 and empty.landmarks.shape == (0, 478, 3)


def test_emotions_follow_labels():
    obs = make_observation(2, labels=np.array([3, 6]))
    assert obs.emotions == ["happiness", "neutral"]


def test_replace_validates_changed_fields_and_names():
    obs = make_observation(2)
    with pytest.raises(ValueError, match="track_ids"):
        obs.replace(track_ids=np.array([1, 2, 3]))
    with pytest.raises(TypeError):
        obs.replace(nonsense=1)
    moved = obs.replace(t=3.5, frame=7)
    assert (moved.t, moved.frame, obs.t) == (3.5, 7, 0.0)
    assert moved == moved and moved.boxes is obs.boxes  # unchanged arrays are shared, not copied
