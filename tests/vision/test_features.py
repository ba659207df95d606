import numpy as np
import pytest

from vision import features as F
from vision.labels import METRICS


def rot(yaw=0.0, pitch=0.0, roll=0.0):
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx
    m[:3, 3] = [1, -2, -30]
    return m


def blend(**scores):
    b = np.zeros((1, 52), np.float32)
    for name, v in scores.items():
        b[0, F.BLENDSHAPE_NAMES.index(name)] = v
    return b


def test_metrics_from_blendshapes():
    m = F.blendshape_metrics(blend(mouthSmileLeft=0.8, mouthSmileRight=0.6, jawOpen=0.5, browDownLeft=1.0))
    got = dict(zip(METRICS, m[0]))
    assert got["smile"] == pytest.approx(0.7)
    assert got["mouth_open"] == pytest.approx(0.5)
    assert got["brow_furrow"] == pytest.approx(0.5)
    assert got["brow_raise"] == 0 and got["eye_widen"] == 0


def test_metrics_stay_in_unit_range():
    m = F.blendshape_metrics(np.ones((4, 52)) * 1.0)
    assert (m >= 0).all() and (m <= 1).all()
    assert F.blendshape_metrics(np.zeros((0, 52))).shape == (0, 5)


def test_valence():
    probs = np.array([[0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1],
                      [0.25, 0, 0, 0.5, 0.25, 0, 0]], np.float32)
    assert F.valence(probs).tolist() == pytest.approx([1, -1, 0, 0])


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (30, 0, 0), (-25, 10, 5), (10, -20, -40), (60, 15, 20)])
def test_head_pose_recovers_angles(yaw, pitch, roll):
    got = F.head_pose(np.stack([rot(yaw, pitch, roll)]))[0]
    assert got == pytest.approx([yaw, pitch, roll], abs=1e-3)


def test_head_pose_ignores_uniform_scale():
    m = rot(20, -10, 5)
    m[:3, :3] *= 3.0
    assert F.head_pose(m[None])[0] == pytest.approx([20, -10, 5], abs=1e-3)


def test_attention():
    mats = np.stack([rot(), rot(10, 0, 0), rot(37.5, 0, 0), rot(0, 70, 0), rot(0, 0, 80)])
    a = F.attention(mats)
    assert a[0] == 1 and a[1] == 1
    assert a[2] == pytest.approx(0.5, abs=1e-3)
    assert a[3] == 0
    assert a[4] == 1  # roll alone does not turn the face away


def fake_landmarks(n=1, seed=0):
    rng = np.random.default_rng(seed)
    lm = rng.uniform(0.3, 0.7, (n, 478, 3)).astype(np.float32)
    lm[:, F.RIGHT_EYE_OUTER, :2] = [0.4, 0.4]
    lm[:, F.LEFT_EYE_OUTER, :2] = [0.6, 0.4]
    return lm


def test_geometry_is_invariant_to_position_rotation_and_scale():
    lm = fake_landmarks()
    base = F.geometry_features(lm, 100, 100)
    a = np.radians(25)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = lm.copy()
    moved[0, :, :2] = (lm[0, :, :2] - 0.5) @ r.T * 0.5 + [0.3, 0.2]
    assert F.geometry_features(moved, 100, 100) == pytest.approx(base, abs=1e-4)
    assert base.shape == (1, 2 * len(F.GEOMETRY_LANDMARKS))
    # eyes land on (-0.5, 0) and (0.5, 0) in the face frame
    assert F.geometry_features(lm, 100, 100).shape[1] == 104


def test_crop_transform_levels_the_eyes_and_fits_the_crop():
    lm = fake_landmarks()
    a = np.radians(-30)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm[0, :, :2] = (lm[0, :, :2] - 0.5) @ r.T + 0.5
    m = F.crop_transforms(lm, 200, 100, size=64)[0]
    px = lm[0, :, :2] * [200, 100]
    mapped = px @ m[:, :2].T + m[:, 2]
    right, left = mapped[F.RIGHT_EYE_OUTER], mapped[F.LEFT_EYE_OUTER]
    assert right[1] == pytest.approx(left[1], abs=1e-3) and right[0] < left[0]
    oval = mapped[list(F.FACE_OVAL)]
    assert oval.min() >= 0 and oval.max() <= 64
    assert F.crop_transforms(np.zeros((0, 478, 3)), 10, 10).shape == (0, 2, 3)
