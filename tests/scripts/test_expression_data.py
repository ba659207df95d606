"""The readings the fusion heads are trained on: the flip-averaged (v3) inputs and empty rows."""
import numpy as np


def _readings(n=4, seed=0):
    import expression_data as ed

    rng = np.random.default_rng(seed)
    r = ed.Readings.zeros(n)
    r.found[:] = [True] * (n - 1) + [False]
    for name in ("fer", "faceapi", "fer_flip", "faceapi_flip"):
        p = rng.random((n, 7)).astype(np.float32)
        getattr(r, name)[:] = p / p.sum(axis=1, keepdims=True)
    for name in ("blendshapes", "geometry", "faceapi_features", "faceapi_features_flip", "sharpness"):
        getattr(r, name)[:] = rng.random(getattr(r, name).shape)
    return r


def test_zeros_has_one_row_per_photo_for_every_reading():
    import expression_data as ed

    r = ed.Readings.zeros(3)
    widths = {name: getattr(r, name).shape for name in ed.Readings.__dataclass_fields__}
    assert widths["found"] == (3,) and widths["sharpness"] == (3,) and widths["faceapi_features_flip"] == (3, 256)
    assert r.v2_features().shape == r.v3_features().shape == (3, 52 + 104 + 7 + 7 + 256 + 1)


def test_v3_inputs_average_each_cnn_over_the_crop_and_its_mirror_image():
    from vision.classifier import fusion2_features

    r = _readings()
    ok = r.found
    want = fusion2_features((r.fer + r.fer_flip)[ok] / 2, (r.faceapi + r.faceapi_flip)[ok] / 2,
                            (r.faceapi_features + r.faceapi_features_flip)[ok] / 2, r.sharpness[ok],
                            r.blendshapes[ok], r.geometry[ok])
    assert np.allclose(r.v3_features()[ok], want, atol=1e-6)
    assert not np.allclose(r.v3_features()[ok], r.v2_features()[ok])
    # a photo without a face: the CNNs' log-probabilities are 0 (probability 1), nothing undefined
    assert np.isfinite(r.v3_features()[~ok]).all()


def test_mesh_geometry_is_the_geometry_frame_for_every_point_and_ignores_pose_in_the_image():
    import expression_data as ed
    from vision import features as F

    rng = np.random.default_rng(0)
    lm = rng.uniform(0.3, 0.7, (1, 478, 3))
    lm[:, F.RIGHT_EYE_OUTER, :2], lm[:, F.LEFT_EYE_OUTER, :2] = [0.4, 0.4], [0.6, 0.4]
    mesh = ed.mesh_geometry(lm, 100, 100).reshape(1, 478, 3)
    # x, y of the geometry landmarks are geometry_features'
    assert np.allclose(mesh[0, list(F.GEOMETRY_LANDMARKS), :2].ravel(), F.geometry_features(lm, 100, 100)[0], atol=1e-5)
    a = np.radians(25)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = lm.copy()
    moved[0, :, :2] = (lm[0, :, :2] - 0.5) @ r.T * 0.5 + [0.3, 0.2]
    moved[0, :, 2] = lm[0, :, 2] * 0.5 + 0.1  # depth scales with the face, shifts freely
    assert np.allclose(ed.mesh_geometry(moved, 100, 100), mesh.reshape(1, -1), atol=1e-4)
