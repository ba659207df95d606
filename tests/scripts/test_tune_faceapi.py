"""scripts/tune_faceapi.py: the JAX copy of face-api's last block starts as face-api itself, training moves it,
and the exported graph keeps face-api's outputs and adds the tuned branch, matching JAX."""
import numpy as np
import pytest

import tune_faceapi as tf


@pytest.fixture(scope="module")
def block2():
    """face-api's block 2 output and its outputs, for random 112x112 RGB crops."""
    from vision.onnx import session
    from vision.registry import model_file

    net = session(tf._with_output(model_file("faceapi").path, tf.BLOCK_INPUT))
    crops = np.random.default_rng(0).uniform(0, 255, (6, 3, 112, 112)).astype(np.float32)
    probs, features, maps = net.run(["probs", "features", tf.BLOCK_INPUT], {"input": crops})
    return crops, probs, features, maps.transpose(0, 2, 3, 1)


def test_jax_block_with_face_apis_weights_is_face_api(block2):
    _, probs, features, maps = block2
    logits, pooled = tf.forward(tf.initial_params(), maps)
    assert np.abs(np.asarray(pooled) - features).max() < 1e-4
    assert np.abs(np.exp(tf.predict(tf.initial_params(), maps)) - probs).max() < 1e-5


def test_training_lowers_the_loss_and_the_export_matches_jax(block2):
    from vision.onnx import session

    crops, probs, features, maps = block2
    x = np.repeat(maps, 24, axis=0).astype(np.float16)  # 144 rows: one whole batch and change
    y = np.tile(np.arange(6), 24)
    before = -tf.predict(tf.initial_params(), x)[np.arange(len(y)), y].mean()
    params = tf.train(x, y, epochs=3)
    after = -tf.predict(params, x)[np.arange(len(y)), y].mean()
    assert after < before
    out = session(tf.export_onnx(params)).run(["probs", "features", "tuned_probs"], {"input": crops})
    assert np.allclose(out[0], probs, atol=1e-6) and np.allclose(out[1], features, atol=1e-6)  # face-api as it was
    assert np.abs(out[2] - np.exp(tf.predict(params, maps))).max() < 1e-4
