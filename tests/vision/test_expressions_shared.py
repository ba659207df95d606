"""Golden figures of the v2 fusion head (the default until v6), its v3 test-time-flip variant, the v4 head (v2 + the
fine-tuned face-api branch), v5 and v6 (the default) on the shared photos: subject-disjoint CV at full size and
as small venue faces (the photos are read once into a cache that is keyed on photos, models and code; v4 needs
the tuned branch's out-of-fold readings, `scripts/tune_faceapi.py ... cv`, about 30 min on 2 cores, and is
skipped without them)."""
import numpy as np
import pytest

from builders import SHARED

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def report():
    import expression_data as ed
    import fusion_v2 as v2

    folder = SHARED / "data" / "expressions"
    rows = ed.read_labels(folder)
    y = np.array([label for _, label in rows])
    readings = ed.read_conditions(folder, ed.DEFAULT_CACHE)
    try:
        import tune_faceapi

        tuned = tune_faceapi.read_oof(folder)
    except SystemExit:
        tuned = None
    return v2.cross_validate(readings, y, [ed.subject_of(p.name) for p, _ in rows], workers=2, tuned=tuned)


def test_v2_beats_both_cnns_and_the_old_fusion_on_five_classes_at_every_size(report):
    for cond, part in report["conditions"].items():
        five = {name: part[name]["macro_recall_5"] for name in ("cnn", "faceapi", "fusion-v1", "fusion")}
        assert five["fusion"] > max(five["cnn"], five["faceapi"], five["fusion-v1"]), (cond, five)
    assert report["conditions"]["full"]["fusion"]["macro_recall_5"] >= 0.68
    assert report["conditions"]["32px"]["fusion"]["macro_recall_5"] >= 0.64
    assert report["conditions"]["32px"]["fusion"]["macro_recall"] >= 0.52


def test_v3_test_time_flip_beats_v2_on_five_classes_at_every_size(report):
    for cond, part in report["conditions"].items():
        assert part["fusion-v3"]["macro_recall_5"] > part["fusion"]["macro_recall_5"], cond
    for cond in ("full", "48px"):  # at 32 px the two are within one photo on 7 classes
        part = report["conditions"][cond]
        assert part["fusion-v3"]["macro_recall"] > part["fusion"]["macro_recall"], cond
    assert report["conditions"]["full"]["fusion-v3"]["macro_recall_5"] >= 0.70
    assert report["conditions"]["48px"]["fusion-v3"]["macro_recall_5"] >= 0.70
    assert report["conditions"]["32px"]["fusion-v3"]["macro_recall_5"] >= 0.66


def test_v2_and_v3_stay_calibrated_at_every_size(report):
    for cond, part in report["conditions"].items():
        assert part["fusion"]["calibration"]["max_abs_error"] <= 0.025, cond
        assert part["fusion-v3"]["calibration"]["max_abs_error"] <= 0.02, cond
        assert part["no_face_rate"] < 0.04, cond


def test_v4_with_the_tuned_face_api_branch_holds_v2s_figures_and_the_branch_reads_disgust(report):
    if "fusion-v4" not in report["conditions"]["full"]:
        pytest.skip("no out-of-fold readings of the tuned face-api (python scripts/tune_faceapi.py ... cv)")
    for cond, part in report["conditions"].items():
        assert part["fusion-v4"]["macro_recall_5"] >= part["fusion"]["macro_recall_5"] - 0.005, cond
        assert part["fusion-v4"]["calibration"]["max_abs_error"] <= 0.02, cond
        # the balanced fine-tune reads disgust, which face-api as shipped almost never says
        disgust = {m: part[m]["per_class_recall"]["disgust"] for m in ("faceapi", "faceapi-tuned")}
        assert disgust["faceapi-tuned"] > disgust["faceapi"] + 0.1, cond
        assert part["faceapi-tuned"]["macro_recall"] > part["faceapi"]["macro_recall"], cond
    assert report["conditions"]["full"]["fusion-v4"]["macro_recall_5"] >= 0.69
    assert report["conditions"]["32px"]["fusion-v4"]["macro_recall_5"] >= 0.65


@pytest.mark.parametrize("head, at_48px, at_32px", [
    ("fusion-v5", 0.715, 0.675),  # fer's penultimate features, both CNNs on the crop and its mirror image
    ("fusion-v6", 0.715, 0.685),  # the default since (models/fusion_head_v6.md): v5 with fer on the crop alone
])
def test_heads_with_fer_penultimate_features_beat_v2_on_every_figure_and_stay_calibrated(report, head, at_48px,
                                                                                          at_32px):
    for cond, part in report["conditions"].items():
        for figure in ("macro_recall", "macro_recall_5"):
            assert part[head][figure] > part["fusion"][figure], (cond, figure)
        assert part[head]["calibration"]["max_abs_error"] <= 0.02, cond
    assert report["conditions"]["48px"][head]["macro_recall_5"] >= at_48px
    assert report["conditions"]["32px"][head]["macro_recall_5"] >= at_32px


@pytest.fixture(scope="module")
def serving():
    """v6 (trained on the photo-way conditions, as shipped) and v7 (the default: trained on the serving-path copies
    too) on the photos read the way an audience is read (scripts/serving_path.py, cached: about 6 min on 2 cores
    the first time), v7 at full, 48 and 32 px too: `eval_expressions.add_serving_path`."""
    import eval_expressions as ee
    import expression_data as ed

    folder = SHARED / "data" / "expressions"
    rows = ed.read_labels(folder)
    y, subjects = ed.labels_and_subjects(rows)
    out = {"conditions": {}}
    ee.add_serving_path(out, folder, ed.read_conditions(folder, ed.DEFAULT_CACHE), y, subjects, workers=2)
    return out["conditions"]


def test_v7_is_calibrated_where_an_audience_is_read_and_holds_v6s_figures_on_the_photos(report, serving):
    for cond in ("serve0", "serve1"):
        v6, v7 = serving[cond]["fusion-v6"], serving[cond]["fusion-v7"]
        # v6 over-reads disgust and under-reads neutral there (.03 off); v7 is within the issue's .02
        assert v7["calibration"]["max_abs_error"] <= 0.015 < 0.025 < v6["calibration"]["max_abs_error"], cond
        assert v7["macro_recall_5"] > v6["macro_recall_5"], cond
        assert serving[cond]["no_face_rate"] < 0.2, cond  # the front end misses some 24-64 px faces in a dim frame
    for cond in ("full", "48px", "32px"):  # the photo-way figures: v7 within a photo or so of v6
        v6, v7 = report["conditions"][cond]["fusion-v6"], serving[cond]["fusion-v7"]
        for figure in ("macro_recall", "macro_recall_5"):
            assert v7[figure] >= v6[figure] - 0.012, (cond, figure)
        assert v7["calibration"]["max_abs_error"] <= 0.025, cond
