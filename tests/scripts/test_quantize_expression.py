"""scripts/quantize_expression.py: every int8 variant of a CNN is a working model of the float one's shape,
and the timing compares every session on the same windows."""
import numpy as np

import quantize_expression as qe
from vision import onnx
from vision.registry import model_file


def test_every_variant_runs_and_reads_seven_probabilities(tmp_path):
    rng = np.random.default_rng(0)
    crops = rng.uniform(-1, 1, (2 * qe.WINDOW, 1, 64, 64)).astype(np.float32)
    found = qe.variants(model_file("cnn").path, crops[:4], tmp_path, "cnn")
    assert {"dynamic u8", "static QDQ per-channel", "static QOperator per-tensor"} <= set(found)
    sessions = {k: onnx.session(p) for k, p in found.items()}
    for s in sessions.values():
        probs = s.run(None, {"input": crops[:3]})[0]
        assert probs.shape == (3, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-2)
    ms = qe.ms_per_face({"float": onnx.session(model_file("cnn").path), **sessions}, crops, rounds=1)
    assert set(ms) == {"float", *found} and all(v > 0 for v in ms.values())
    assert not any(p.parent.name == "models" for p in found.values())  # never written beside the pinned models
