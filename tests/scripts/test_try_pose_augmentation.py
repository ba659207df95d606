"""scripts/try_pose_augmentation.py: the geometry block of a face turned in 3-D, and the turned training rows."""
import numpy as np
import pytest

t = pytest.importorskip("try_pose_augmentation")


def _face_landmarks(rng):
    """[1,478,3] normalised landmarks of MediaPipe's canonical face, a little perturbed, in a 640x480 frame."""
    from vision.headpose import CANONICAL_POINTS

    assert CANONICAL_POINTS.shape[1] == 3
    base = rng.normal(0, 1, (478, 3))
    base[:, :2] *= 40
    base[:, 2] *= 10
    base[33] = [-30, 0, 0]   # right eye's outer corner (image left)
    base[263] = [30, 0, 0]   # left eye's outer corner
    px = base + [320, 240, 0]
    return np.stack([px[:, 0] / 640, px[:, 1] / 480, px[:, 2] / 640], axis=1)[None]


def test_no_turn_gives_the_geometry_the_head_reads():
    import expression_data as ed
    from vision.features import geometry_features

    landmarks = _face_landmarks(np.random.default_rng(0))
    mesh = ed.mesh_geometry(landmarks, 640, 480)
    assert np.allclose(t.turned_geometry(mesh, np.zeros(1), np.zeros(1)), geometry_features(landmarks, 640, 480),
                       atol=1e-5)


def test_a_turn_moves_the_geometry_and_opposite_yaws_mirror_a_symmetric_face():
    import expression_data as ed
    from vision.features import GEOMETRY_LANDMARKS

    landmarks = _face_landmarks(np.random.default_rng(1))
    mesh = ed.mesh_geometry(landmarks, 640, 480)
    flat = t.turned_geometry(mesh, np.zeros(1), np.zeros(1))
    assert np.abs(t.turned_geometry(mesh, np.array([30.0]), np.zeros(1)) - flat).max() > 0.05
    assert np.abs(t.turned_geometry(mesh, np.zeros(1), np.array([20.0])) - flat).max() > 0.05
    # a face symmetric about x = 0 (every point paired with its mirror image, the eye corners with each other):
    # turning it left or right gives mirror images, each point's x negated where its partner is
    rng = np.random.default_rng(2)
    read = list(GEOMETRY_LANDMARKS)
    partner, points = {33: 263, 263: 33}, np.zeros((478, 3))
    points[33], points[263] = [-0.5, 0, 0], [0.5, 0, 0]
    for group in ([i for i in read if i not in (33, 263)], [i for i in range(478) if i not in read + [33, 263]]):
        half = len(group) // 2
        for a, b in zip(group[:half], group[half:2 * half]):  # an odd one out stays on the axis (x = 0)
            partner[a], partner[b] = b, a
            points[a] = rng.normal(0, 1, 3)
            points[b] = points[a] * [-1, 1, 1]
    sym = points.reshape(1, -1)
    left, right = (t.turned_geometry(sym, np.array([a]), np.array([10.0])).reshape(-1, 2) for a in (25.0, -25.0))
    checked = [(k, read.index(partner[i])) for k, i in enumerate(read) if i in partner]
    assert len(checked) >= 50
    for k, j in checked:
        assert np.allclose(left[k] * [-1, 1], right[j], atol=1e-6)
    assert not np.allclose(left, right)


def test_turned_conditions_replace_only_the_geometry_block_of_rows_with_a_mesh():
    class Readings:
        def __init__(self, x, found):
            self.x, self.found = x, found

        def v5_features(self, flip=False, fer_flip=None):
            return self.x

    import fusion_v2 as v2

    rng = np.random.default_rng(3)
    n = 6
    x = rng.normal(size=(n, 555)).astype(np.float32)
    found = np.array([True, True, False, True, True, True])
    mesh = rng.normal(size=(n, 478 * 3)).astype(np.float32)
    mesh[:, [33 * 3, 263 * 3]] = [-0.5, 0.5]
    mesh[4] = 0  # no mesh for this photo: left as read
    turned = t.turned_conditions({"full": Readings(x, found)}, {"full": mesh}, 30, 20, copies=2)
    assert list(turned) == ["full-turned0", "full-turned1"]
    for rows in turned.values():
        got = v2.FEATURES["fusion-v6"](rows)
        assert np.array_equal(rows.found, found & (np.arange(n) != 4))
        keep = np.ones(555, bool)
        keep[t.GEOMETRY] = False
        assert np.array_equal(got[:, keep], x[:, keep])
        assert np.array_equal(got[[2, 4]], x[[2, 4]])
        assert not np.allclose(got[rows.found][:, t.GEOMETRY], x[rows.found][:, t.GEOMETRY])
    assert not np.allclose(turned["full-turned0"].x, turned["full-turned1"].x)
