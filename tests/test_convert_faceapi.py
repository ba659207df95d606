"""The tfjs -> ONNX conversion of face-api's expression net against its NumPy reference."""
import hashlib

import numpy as np
import pytest

from conftest import FIXTURES, ROOT

convert = pytest.importorskip("convert_faceapi_to_onnx")
MANIFEST = ROOT / "models" / "src" / "face_expression_model-weights_manifest.json"


@pytest.fixture(scope="module")
def weights():
    return convert.read_weights(MANIFEST)


@pytest.fixture(scope="module")
def model_bytes(weights):
    return convert.to_onnx(weights).SerializeToString()


def test_every_tensor_is_read_and_dequantised(weights):
    assert len(weights) == 2 + 15 * 3 + 2  # conv0 (filters, bias), 15 separable convs (3 each), fc (2)
    assert weights["dense0/conv0/filters"].shape == (3, 3, 3, 32)
    assert weights["fc/weights"].shape == (256, 7)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights.values())


def test_onnx_matches_numpy_on_random_inputs(weights, model_bytes):
    batch = np.random.default_rng(1).uniform(0, 255, (3, 112, 112, 3))
    assert convert.max_difference(weights, model_bytes, batch) <= 1e-4


def test_onnx_matches_numpy_on_a_real_face_and_reads_it(weights, model_bytes):
    import cv2

    img = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))[40:260, 60:260, ::-1]
    face = cv2.resize(img, (112, 112), interpolation=cv2.INTER_AREA).astype(np.float64)
    batch = np.stack([face, face[:, ::-1]])
    assert convert.max_difference(weights, model_bytes, batch) <= 1e-4
    probs, features = convert.numpy_forward(weights, batch)
    assert probs.shape == (2, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    assert features.shape == (2, 256) and (features >= 0).all()  # pooled after a ReLU


def test_labels_are_reordered_to_the_project_order():
    from vision.labels import EMOTIONS

    names = {"angry": "anger", "disgusted": "disgust", "fearful": "fear", "happy": "happiness", "sad": "sadness",
             "surprised": "surprise", "neutral": "neutral"}
    assert [names[convert.FACEAPI_LABELS[i]] for i in convert.ORDER] == list(EMOTIONS)


def test_committed_model_is_what_the_script_writes(model_bytes):
    committed = (ROOT / "models" / "faceapi_expression.onnx").read_bytes()
    assert hashlib.sha256(model_bytes).hexdigest() == hashlib.sha256(committed).hexdigest()
