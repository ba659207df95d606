"""`--label-rule`: a fusion head names a face's expression by its balanced decision or by its most probable
expression ("auto": probable in the audience scene, balanced in the single one); the probabilities are the same."""
import json

import numpy as np
import pandas as pd
import pytest

from builders import FIXTURES, make_observation, run_cli
from vision.labels import EMOTIONS, LABEL_RULES, PROB_COLUMNS
from vision.settings import Settings


def test_the_rule_in_force_follows_the_scene_unless_named():
    assert LABEL_RULES == ("auto", "balanced", "probable") and Settings().label_rule == "auto"
    assert Settings(scene="audience").labels_by == "probable"
    assert Settings(scene="single").labels_by == "balanced"
    assert Settings(scene="audience", label_rule="balanced").labels_by == "balanced"
    assert Settings(scene="single", label_rule="probable").labels_by == "probable"
    with pytest.raises(ValueError, match="label_rule must be one of auto, balanced, probable"):
        Settings(label_rule="argmax")


@pytest.mark.parametrize("name", ["fusion", "fusion-v1"])
def test_a_head_built_probable_labels_by_its_probabilities_and_keeps_them(name, monkeypatch):
    """The head's own decision and the argmax of its probabilities differ on a face; `probable` takes the
    second, the probabilities are untouched."""
    import vision.classifier as vc
    from vision.pipeline import CLASSIFIER_MODELS, build_classifier
    from vision.registry import model_file

    models = {n: model_file(n) for n in CLASSIFIER_MODELS[name]}
    heads = {rule: build_classifier(name, models, label_rule=rule) for rule in ("balanced", "probable")}
    assert not heads["balanced"].probable and heads["probable"].probable
    probs = np.array([[0.1, 0.3, 0.0, 0.1, 0.1, 0.0, 0.4], [0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.1]], np.float32)
    decision = np.array([1, 3], np.int64)  # the balanced decision calls the first face disgust
    monkeypatch.setattr(vc, "_face_inputs", lambda faces: ())
    monkeypatch.setattr(vc, "_features", lambda *a: np.zeros((2, 4), np.float32))
    monkeypatch.setattr(vc, "face_crops", lambda images, observations: None)
    out = {}
    for rule, head in heads.items():
        head._session = type("Session", (), {"run": lambda self, names, feed: [probs, decision]})()
        head.head_inputs = lambda readings, faces: readings
        obs = make_observation(2)
        if name == "fusion-v1":
            head.cnn = type("Cnn", (), {"probabilities": lambda self, crops: None})()
            out[rule] = head.classify([None], [obs])[0]
        else:
            out[rule] = head.from_crop_readings(np.zeros((2, 4), np.float32), [obs])[0]
    assert out["balanced"].labels.tolist() == [1, 3] and out["probable"].labels.tolist() == [6, 3]
    for o in out.values():
        assert np.array_equal(o.probs, probs)


def _analyze(tmp_path, *options):
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--scene", "audience", "--out", tmp_path, *options)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    return pd.read_parquet(tmp_path / "observations.parquet"), summary


def test_audience_scene_labels_each_face_by_its_most_probable_expression(tmp_path):
    obs, summary = _analyze(tmp_path / "auto")
    assert summary["settings"]["label_rule"] == "probable"
    read = obs[obs["emotion"].isin(EMOTIONS)]
    assert len(read) > 0
    most_probable = np.array(EMOTIONS)[read[list(PROB_COLUMNS)].to_numpy().argmax(axis=1)]
    assert (read["emotion"].to_numpy() == most_probable).all()
    assert "most probable expression (--label-rule probable)" in (tmp_path / "auto" / "report.html").read_text()
    balanced, summary = _analyze(tmp_path / "balanced", "--label-rule", "balanced")
    assert summary["settings"]["label_rule"] == "balanced"
    # the same readings: only the label may differ
    np.testing.assert_allclose(balanced[list(PROB_COLUMNS)].to_numpy(), obs[list(PROB_COLUMNS)].to_numpy(),
                               rtol=0, atol=1e-6)


def test_an_unknown_rule_is_a_one_line_usage_error(tmp_path):
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--label-rule", "argmax", "--out", tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--label-rule" in r.stderr
