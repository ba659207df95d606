"""The v7 fusion head: v6's form (its inputs, its reading of the CNNs) with weights also trained on the photos read
the way an audience is read (scripts/serving_path.py); its loading, `--classifier fusion-v7` end to end, and the
serving-path rows it is trained on having the layout the classifier reads."""

import numpy as np
import pytest

from builders import check_analyze_with, random_readings


@pytest.fixture(scope="module")
def models():
    from vision.pipeline import CLASSIFIER_MODELS
    from vision.registry import model_file

    return {n: model_file(n) for n in {*CLASSIFIER_MODELS["fusion-v7"], *CLASSIFIER_MODELS["fusion-v6"]}}


def test_v7_head_reads_the_cnns_as_v6_does(models):
    from vision.classifier import FER_FEATURES
    from vision.onnx import registered_session
    from vision.pipeline import build_classifier

    v7, v6 = build_classifier("fusion-v7", models), build_classifier("fusion-v6", models)
    for flag in ("flip", "flip_faceapi", "fer_features", "tuned"):
        assert getattr(v7, flag) == getattr(v6, flag), flag
    assert v7.flip_faceapi and v7.fer_features and v7.cnn.features
    width = 52 + 104 + 7 + 7 + 256 + 1 + FER_FEATURES
    assert registered_session("fusion_v7").get_inputs()[0].shape[1] == width
    # other weights: the two heads do not give the same probabilities on the same inputs
    import onnx
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(models["fusion_v6"].path)).graph.initializer}
    noise = np.random.default_rng(0).normal(size=(8, width))  # around v6's training inputs: no saturated softmax
    x = (init["mean"] + 0.5 * init["scale"] * noise).astype(np.float32)
    p7 = registered_session("fusion_v7").run(["probs"], {"features": x})[0]
    p6 = registered_session("fusion_v6").run(["probs"], {"features": x})[0]
    assert np.allclose(p7.sum(axis=1), 1, atol=1e-5) and not np.allclose(p7, p6, atol=1e-3)


def test_v7_is_the_default_and_the_heads_before_it_stay_selectable():
    from vision.labels import CLASSIFIERS
    from vision.registry import model_file

    assert CLASSIFIERS[0] == "fusion" and {"fusion-v7", "fusion-v6", "fusion-v2"} <= set(CLASSIFIERS)
    assert model_file("fusion_v7").path.name == "fusion_head_v7.onnx"
    assert model_file("fusion").path.name == DEFAULT_FILE
    assert model_file("fusion").sha256 == model_file("fusion_v7").sha256


#: The file `--classifier fusion` reads (models/models.json "fusion").
DEFAULT_FILE = "fusion_head_v7.onnx"


def test_serving_path_rows_have_the_layout_v6_form_heads_read():
    """train_fusion_head --head v7 stacks serving-path rows (HeadInputs) with photo-way readings through
    fusion_v2.FEATURES["fusion-v6"]: both give rows of the classifier's width, in the same place."""
    import fusion_v2 as v2
    import serving_path as sp

    rng = np.random.default_rng(1)
    r = random_readings(3, seed=1)
    x = rng.normal(size=(2, sp.WIDTH)).astype(np.float32)
    serve = sp.HeadInputs(x, np.array([True, False]))
    rows, idx = v2.stack({"full": r, "serve0": serve}, ["full", "serve0"], np.arange(2), v2.FEATURES["fusion-v6"])
    assert rows.shape == (3, sp.WIDTH) and np.array_equal(rows[-1], x[0])  # the serving row with a face, as read
    assert list(idx) == [0, 1, 0]


def test_analyze_with_fusion_v7_end_to_end(tmp_path):
    check_analyze_with("fusion-v7", "fusion_v7", tmp_path)
