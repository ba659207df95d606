"""The v6 fusion head: v5's inputs with only face-api read on the crop and its mirror image (fer on the crop
alone), its loading, its reading of the CNNs, its ONNX export matching scikit-learn, `--classifier fusion-v6`
end to end, and the registry's names for the default and the old v2 head."""

import numpy as np
import pytest

from builders import check_analyze_with, check_head_export, random_readings


@pytest.fixture(scope="module")
def models():
    from vision.pipeline import CLASSIFIER_MODELS
    from vision.registry import model_file

    return {n: model_file(n) for n in {*CLASSIFIER_MODELS["fusion-v6"], *CLASSIFIER_MODELS["fusion-v2"]}}


def test_v6_head_loads_flips_face_api_alone_and_reads_fer_features(models):
    from vision.classifier import FER_FEATURES
    from vision.onnx import registered_session
    from vision.pipeline import build_classifier

    clf = build_classifier("fusion-v6", models)
    assert clf.flip_faceapi and not clf.flip and clf.fer_features and not clf.tuned and clf.cnn.features
    v2 = build_classifier("fusion-v2", models)
    assert not (v2.flip or v2.flip_faceapi or v2.fer_features)
    assert registered_session("fusion_v6").get_inputs()[0].shape[1] == 52 + 104 + 7 + 7 + 256 + 1 + FER_FEATURES


def test_face_api_alone_read_on_the_crop_and_its_mirror_image(models):
    from vision.classifier import CnnClassifier, FaceApiClassifier, cnn_outputs

    rng = np.random.default_rng(0)
    crops = rng.uniform(-1, 1, (3, 1, 64, 64)).astype(np.float32)
    rgb = rng.uniform(0, 255, (3, 3, 112, 112)).astype(np.float32)
    cnn = CnnClassifier(models["cnn"].path, features=True)
    faceapi = FaceApiClassifier(models["faceapi"].path)
    fer_p, fa_p, fa_f, fer_f = cnn_outputs(cnn, faceapi, crops, rgb, flip=False, fer_features=True, flip_faceapi=True)
    want_fer_p, want_fer_f = cnn.outputs(crops)  # fer: the crop alone
    assert np.allclose(fer_p, want_fer_p, atol=1e-6) and np.allclose(fer_f, want_fer_f, atol=1e-6)
    p0, f0 = faceapi.outputs(rgb)
    p1, f1 = faceapi.outputs(np.ascontiguousarray(rgb[..., ::-1]))
    assert np.allclose(fa_p, (p0 + p1) / 2, atol=1e-5) and np.allclose(fa_f, (f0 + f1) / 2, atol=1e-4)
    # `flip` alone still flips both (v3, v5)
    both = cnn_outputs(cnn, faceapi, crops, rgb, flip=True, fer_features=True)
    q0, g0 = cnn.outputs(np.ascontiguousarray(crops[..., ::-1]))
    assert np.allclose(both[0], (want_fer_p + q0) / 2, atol=1e-6) and np.allclose(both[1], fa_p, atol=1e-6)


def test_v6_head_exported_to_onnx_gives_the_scikit_learn_model_on_random_features():
    import fusion_v2 as v2

    rng = np.random.default_rng(2)
    n_features = 52 + 104 + 14 + 256 + 1 + v2.FER_BLOCK
    x = rng.normal(size=(400, n_features)).astype(np.float32) * rng.uniform(0.1, 5, n_features).astype(np.float32)
    y = rng.integers(0, 7, 400)
    model = v2.make_head("fusion-v6").fit(x, y)
    assert (model.c, model.w_fer) == (v2.C_V6, v2.FER_WEIGHT_V6)
    check_head_export(model, n_features, rng, 1.2, metadata={"flip_faceapi": "1", "fer_features": "1"})


def test_v6_training_inputs_are_what_the_classifier_reads():
    """fusion_v2.FEATURES["fusion-v6"]: fer (probabilities, features) on the crop, face-api flip-averaged."""
    import fusion_v2 as v2

    r = random_readings(3, seed=3)
    x = v2.FEATURES["fusion-v6"](r)
    assert np.allclose(x[:, -128:], r.fer_features)
    assert np.allclose(x[:, 52 + 104:52 + 104 + 7], np.log(r.fer), atol=1e-6)
    assert np.allclose(x[:, 52 + 104 + 7:52 + 104 + 14], np.log((r.faceapi + r.faceapi_flip) / 2), atol=1e-6)


def test_registry_keeps_v6_and_v2_selectable():
    from vision.labels import CLASSIFIERS
    from vision.registry import model_file

    assert CLASSIFIERS[0] == "fusion" and {"fusion-v6", "fusion-v2"} <= set(CLASSIFIERS)
    assert model_file("fusion_v2").path.name == "fusion_head_v2.onnx"
    assert model_file("fusion_v6").path.name == "fusion_head_v6.onnx"
    # the default is v7 now (tests/vision/test_fusion_v7.py); v6, the default before it, stays selectable
    assert model_file("fusion").sha256 != model_file("fusion_v6").sha256


def test_analyze_with_fusion_v6_end_to_end(tmp_path):
    check_analyze_with("fusion-v6", "fusion_v6", tmp_path)
