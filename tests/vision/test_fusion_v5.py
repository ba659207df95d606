"""The v5 fusion head: fer's penultimate features (a second output added to fer's graph, shipped as the pinned
`cnn_features` file), the head loading and reading them, its ONNX export matching scikit-learn, and
`--classifier fusion-v5` end to end."""

import numpy as np
import pytest

from builders import check_analyze_with, check_head_export


@pytest.fixture(scope="module")
def fer_path():
    from vision.registry import model_file

    return model_file("cnn").path


def test_fer_features_are_its_last_block_pooled_and_leave_its_probabilities_unchanged(fer_path):
    import onnx
    from onnx import TensorProto, helper

    from vision.classifier import FER_BLOCK, FER_FEATURES, CnnClassifier
    from vision.onnx import session

    crops = np.random.default_rng(0).uniform(-1, 1, (4, 1, 64, 64)).astype(np.float32)
    plain = CnnClassifier(fer_path)
    probs, features = plain.with_features().outputs(crops)
    assert np.array_equal(probs, plain.probabilities(crops))
    assert features.shape == (4, FER_FEATURES) and plain.with_features().features and not plain.features
    # independent of the added nodes: the block's raw map as an output, averaged here
    model = onnx.load(str(fer_path))
    model.graph.output.append(helper.make_tensor_value_info(FER_BLOCK, TensorProto.FLOAT, None))
    block = session(model.SerializeToString()).run([FER_BLOCK], {"input": crops})[0]
    assert block.shape == (4, FER_FEATURES, 4, 4)
    assert np.allclose(features, block.mean(axis=(2, 3)), atol=1e-5)
    with pytest.raises(Exception):  # the pinned graph as it is has no features output to ask for
        plain.outputs(crops)


def test_the_shipped_features_graph_is_what_the_script_derives_and_needs_no_onnx_package(fer_path, tmp_path):
    import subprocess
    import sys

    from derive_fer_features import derive

    from vision.classifier import features_graph
    from vision.registry import model_file

    shipped = model_file("cnn_features").path
    assert derive(tmp_path / "f.onnx") == model_file("cnn_features").sha256
    assert (tmp_path / "f.onnx").read_bytes() == shipped.read_bytes()
    assert features_graph(fer_path) == shipped  # the pinned fer: the pinned derived file, no graph editing
    code = ("import sys; sys.modules['onnx'] = None\n"  # a plain install has no onnx package
            "import numpy as np\nfrom vision.classifier import CnnClassifier\nfrom vision.registry import model_file\n"
            "p, f = CnnClassifier(model_file('cnn').path, features=True).outputs(np.zeros((2, 1, 64, 64), np.float32))\n"
            "assert f.shape == (2, 128) and 'onnx' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(shipped.parent.parent))


def test_v5_head_loads_reads_fer_features_and_both_cnns_on_crop_and_mirror_image():
    from vision.classifier import FER_FEATURES
    from vision.onnx import registered_session
    from vision.pipeline import CLASSIFIER_MODELS, build_classifier
    from vision.registry import model_file

    models = {n: model_file(n) for n in CLASSIFIER_MODELS["fusion-v5"]}
    clf = build_classifier("fusion-v5", models)
    assert clf.flip and clf.fer_features and not clf.tuned and clf.cnn.features
    assert not build_classifier("fusion-v2", {**models, "fusion_v2": model_file("fusion_v2")}).fer_features
    assert registered_session("fusion_v5").get_inputs()[0].shape[1] == 52 + 104 + 7 + 7 + 256 + 1 + FER_FEATURES


def test_v5_head_exported_to_onnx_gives_the_scikit_learn_model_on_random_features():
    import fusion_v2 as v2

    rng = np.random.default_rng(1)
    n_features = 52 + 104 + 14 + 256 + 1 + v2.FER_BLOCK
    x = rng.normal(size=(400, n_features)).astype(np.float32) * rng.uniform(0.1, 5, n_features).astype(np.float32)
    y = rng.integers(0, 7, 400)
    model = v2.make_head("fusion-v5").fit(x, y)
    assert model.w_fer == v2.FER_WEIGHT and model.weights[-1] == v2.FER_WEIGHT and model.weights[-v2.FER_BLOCK - 1] == 1
    check_head_export(model, n_features, rng, 1.3)


def test_analyze_with_fusion_v5_end_to_end(tmp_path):
    check_analyze_with("fusion-v5", "fusion_v5", tmp_path)
