"""scripts/try_fusion_v6.py (each CNN's view: crop, mirror or their mean; the fear-logit offset chosen on the other
folds) and scripts/compare_footage.py (top-label shares and mean valence per clip)."""
import numpy as np

from builders import FIXTURES
from builders import random_readings as _readings


def test_views_pick_each_cnn_on_crop_mirror_or_mean_and_match_the_v5_and_v6_inputs():
    import fusion_v2 as v2
    import try_fusion_v6 as t6

    r = _readings()
    assert np.allclose(t6.view_features(r, "mean", "mean"), v2.FEATURES["fusion-v5"](r))
    assert np.allclose(t6.view_features(r, "crop", "mean"), v2.FEATURES["fusion-v6"](r))
    mirror = t6.view_features(r, "mirror", "crop")
    assert np.allclose(mirror[:, -128:], r.fer_features_flip)
    assert np.allclose(t6.view_features(r, "crop", "crop", fer_features=False), v2.FEATURES["fusion"](r))


def test_fear_offset_is_chosen_on_the_other_folds_and_moves_only_fear():
    import try_fusion_v6 as t6

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(7), 200)
    logits = rng.normal(size=(len(y), 7)) + 3 * np.eye(7)[y]
    logits[y == t6.FEAR, t6.FEAR] -= 3.5  # fear is under-called: an offset helps
    split = [(np.setdiff1d(np.arange(len(y)), np.arange(k, len(y), 4)), np.arange(k, len(y), 4)) for k in range(4)]
    out, chosen = t6.with_fear_offset({"full": logits}, y, {"full": np.ones(len(y), bool)}, split)
    assert len(chosen) == 4 and all(d > 0 for d in chosen)
    for (_, te), d in zip(split, chosen):
        assert np.allclose(out["full"][te] - logits[te], d * np.eye(7)[t6.FEAR])
    assert (out["full"].argmax(1)[y == t6.FEAR] == t6.FEAR).mean() > (logits.argmax(1)[y == t6.FEAR] == t6.FEAR).mean()


def test_compare_footage_reports_shares_and_valence_per_clip():
    import compare_footage

    r = compare_footage.analyse(FIXTURES / "two_faces.mp4", "fusion", "auto")
    assert r["faces"] > 100 and abs(sum(r["top_share"].values()) - 1) < 1e-9
    assert r["top_share"]["happiness"] > 0.5 and r["valence"] > 0.5  # both faces smile
    assert "error" in compare_footage.analyse(FIXTURES / "missing.mp4", "fusion", "auto")


def test_compare_footage_splits_the_readings_by_face_size():
    import compare_footage

    r = compare_footage.analyse(FIXTURES / "two_faces.mp4", "fusion", "auto", edges=[64.0, 1000.0])
    bands = r["by_size"]
    assert list(bands) == ["0-64 px", "64-1000 px", "1000-inf px"]
    assert sum(b["faces"] for b in bands.values()) == r["faces"]  # every reading in one band
    for b in bands.values():
        if b["faces"]:
            assert abs(sum(b["top_share"].values()) - 1) < 1e-9


def test_compare_footage_runs_each_classifier_under_each_label_rule(capsys):
    import json

    import compare_footage

    assert compare_footage.main([str(FIXTURES / "two_faces.mp4"), "--classifiers", "fusion", "--scene", "audience",
                                 "--label-rules", "balanced,probable", "--json"]) == 0
    by = json.loads(capsys.readouterr().out)[str(FIXTURES / "two_faces.mp4")]
    assert list(by) == ["fusion/balanced", "fusion/probable"]
    # the rule changes labels only: the same faces, the same probabilities and valence
    assert by["fusion/balanced"]["faces"] == by["fusion/probable"]["faces"] > 0
    assert abs(by["fusion/balanced"]["valence"] - by["fusion/probable"]["valence"]) < 1e-6
