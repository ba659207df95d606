"""scripts/try_head_inputs.py and fusion_v2.Head's dropped blocks: a block left out has no coefficient."""
import numpy as np


def test_a_dropped_block_gets_no_coefficient_and_the_rest_still_learns():
    import fusion_v2 as v2
    import try_head_inputs as t

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 30)
    x = rng.normal(size=(len(y), 555))
    x[:, 60] += 3 * (y == 1)  # a geometry column that tells disgust
    x[:, 10] += 3 * (y == 3)  # a blendshape column that tells happiness
    for dropped, geometry_used in (((), True), ((t.BLOCKS["geometry"],), False)):
        model = v2.make_head("fusion-v6", dropped=dropped).fit(x, y)
        _, _, w, _ = model.export()
        assert bool(np.abs(w[t.BLOCKS["geometry"]]).max() > 0) == geometry_used
        assert np.abs(w[10]).max() > 0  # the blendshapes still count
    assert list(t.variants(["geometry", "sharpness"]).values()) == [(), (t.BLOCKS["geometry"],),
                                                                   (t.BLOCKS["sharpness"],)]
    assert sum(b.stop - b.start for b in t.BLOCKS.values()) == 555  # v6's input width, every column once


def test_frontal_geometry_is_the_same_for_a_face_turned_scaled_and_moved():
    from scipy.spatial.transform import Rotation

    import try_head_inputs as t
    from vision.headpose import CANONICAL_POINTS, PNP_LANDMARKS

    rng = np.random.default_rng(1)
    face = rng.normal(0, 4, (478, 3))  # a face in the canonical frame (cm, y up, z towards the camera)
    face[list(PNP_LANDMARKS)] = CANONICAL_POINTS
    flip = np.array([1.0, -1.0, -1.0])  # -> the upright image frame of mesh_geometry (y down, depth away)
    turned = 0.2 * Rotation.from_euler("yxz", [35, -15, 5], degrees=True).apply(face) + [3.0, -1.0, 0.5]
    meshes = np.stack([face * flip, turned * flip, np.zeros_like(face)]).reshape(3, -1)
    g = t.frontal_geometry(meshes)
    assert g.shape == (3, 104)
    assert np.allclose(g[0], g[1], atol=1e-5) and not g[2].any()
    assert not np.allclose(meshes[0], meshes[1])
    # the canonical face itself: the eyes' outer corners one unit apart on the x axis
    from vision.features import GEOMETRY_LANDMARKS
    eye = GEOMETRY_LANDMARKS.index(33), GEOMETRY_LANDMARKS.index(263)
    pts = g[0].reshape(-1, 2)
    assert np.allclose(pts[eye[0]], [-0.5, 0.0], atol=1e-5) and np.allclose(pts[eye[1]], [0.5, 0.0], atol=1e-5)
