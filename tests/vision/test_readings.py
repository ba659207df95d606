"""vision.readings: every face read by default; at a set rate per track, the last reading carried."""
import numpy as np
import pytest
from builders import make_observation

from vision.readings import ExpressionReadings, classify_readable


class CountingClassifier:
    """probs: the face's box x in every column (so a carried reading is told from a fresh one)."""

    def __init__(self):
        self.faces = 0

    def classify(self, images, observations):
        out = []
        for obs in observations:
            self.faces += len(obs)
            probs = np.repeat(obs.boxes[:, :1], 7, axis=1).astype(np.float32)
            out.append(obs.replace(probs=probs, labels=np.arange(len(obs))))
        return out


def tracked(t, ids, xs=None, readable=None, frame=0):
    xs = xs if xs is not None else [0.1 * (k + 1) for k in range(len(ids))]
    boxes = [[x, 0.3, 0.1, 0.2] for x in xs]
    fields = dict(track_ids=np.asarray(ids, np.int64))
    if readable is not None:
        fields["readable"] = np.asarray(readable, bool)
    return make_observation(len(ids), t=t, boxes=boxes, frame=frame, **fields)


def test_default_reads_every_face_like_classify_readable():
    window = [tracked(0.0, [1, 2]), tracked(0.04, [1, 2], readable=[True, False])]
    a = ExpressionReadings().classify(CountingClassifier(), [None] * 2, window)
    b = classify_readable(CountingClassifier(), [None] * 2, window)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.probs, y.probs)
        np.testing.assert_array_equal(x.labels, y.labels)
    assert np.isnan(a[1].probs[1]).all() and a[1].labels[1] == -1


def test_rate_reads_each_track_at_most_every_s_and_carries_between():
    clf, readings = CountingClassifier(), ExpressionReadings(every_s=0.1)
    window = [tracked(0.04 * k, [1], xs=[0.1 + 0.01 * k], frame=k) for k in range(8)]  # t = 0, .04, ... .28
    out = readings.classify(clf, [None] * 8, window)
    got = [round(float(o.probs[0, 0]), 3) for o in out]
    # read at t=0 (x .10), t=.12 (x .13; .08 < .1 carried), t=.24 (x .16)
    assert got == [0.10, 0.10, 0.10, 0.13, 0.13, 0.13, 0.16, 0.16]
    assert clf.faces == 3
    nxt = readings.classify(clf, [None], [tracked(0.32, [1], xs=[0.5], frame=8)])  # state crosses windows
    assert float(nxt[0].probs[0, 0]) == pytest.approx(0.16)


def test_a_new_track_is_read_at_once_and_unreadable_faces_carry_nothing():
    clf, readings = CountingClassifier(), ExpressionReadings(every_s=1.0)
    first = readings.classify(clf, [None], [tracked(0.0, [1], xs=[0.2])])
    out = readings.classify(clf, [None], [tracked(0.1, [1, 2], xs=[0.3, 0.6], readable=[False, True])])
    assert float(first[0].probs[0, 0]) == pytest.approx(0.2)
    assert np.isnan(out[0].probs[0]).all() and out[0].labels[0] == -1  # turned away: no reading, as always
    assert float(out[0].probs[1, 0]) == pytest.approx(0.6)  # track 2 is new: read
    again = readings.classify(clf, [None], [tracked(0.2, [1], xs=[0.9])])
    assert float(again[0].probs[0, 0]) == pytest.approx(0.2)  # track 1's reading from t=0 still carried


def test_reset_forgets_readings():
    clf, readings = CountingClassifier(), ExpressionReadings(every_s=10.0)
    readings.classify(clf, [None], [tracked(0.0, [1], xs=[0.2])])
    readings.reset()
    out = readings.classify(clf, [None], [tracked(0.1, [1], xs=[0.4])])
    assert float(out[0].probs[0, 0]) == pytest.approx(0.4)


class FakeFusion:
    """cut: the box x (what a CNN would read from the crop); read_crops reads it; the head: that reading plus
    the frame's blendshape 0."""

    def __init__(self):
        self.crops = 0

    def cut(self, images, observations):
        return np.concatenate([o.boxes[:, :1] for o in observations])

    def read_crops(self, parts):
        self.crops += sum(len(p) for p in parts)
        return np.concatenate(parts)

    def crop_readings(self, images, observations):
        return self.read_crops([self.cut(images, observations)])

    def from_crop_readings(self, readings, observations):
        out, k = [], 0
        for obs in observations:
            r = readings[k:k + len(obs), :1] + obs.blendshapes[:, :1]
            k += len(obs)
            out.append(obs.replace(probs=np.repeat(r, 7, axis=1), labels=np.zeros(len(obs), np.int64)))
        return out

    def classify(self, images, observations):
        return self.from_crop_readings(self.crop_readings(images, observations), observations)


def test_with_a_fusion_head_crops_are_carried_and_the_head_runs_on_every_frame():
    clf, readings = FakeFusion(), ExpressionReadings(every_s=0.1)
    window = []
    for k in range(4):  # t = 0, .04, .08, .12; blendshape 0 changes every frame
        obs = tracked(0.04 * k, [1, 2], xs=[0.1 + 0.01 * k, 0.5], readable=[True, k != 1], frame=k)
        window.append(obs.replace(blendshapes=np.full((2, 52), k, np.float32)))
    out = readings.classify(clf, [None] * 4, window)
    got = [[round(float(v), 3) for v in o.probs[:, 0]] for o in out]
    # track 1: crop read at t=0 (x .10) and t=.12 (x .13); track 2 at t=0 and again at .12; frame 1's face 2 unreadable
    assert got[0] == [0.10, 0.50] and got[2] == [2.10, 2.50] and got[3] == [3.13, 3.50]
    assert got[1][0] == 1.10 and np.isnan(out[1].probs[1]).all()
    assert clf.crops == 4
    every = ExpressionReadings().classify(FakeFusion(), [None] * 4, window)  # rate 0: the classifier as is
    assert [round(float(v), 3) for v in every[3].probs[:, 0]] == [3.13, 3.5]


def test_negative_rate_is_refused():
    with pytest.raises(ValueError, match="expression_every_s"):
        ExpressionReadings(-1.0)
