"""Golden figures of the v3 fusion head (the default) on the shared photos: subject-disjoint CV at full size and as
small venue faces (the photos are read once into a cache that is keyed on photos, models and code)."""
import numpy as np
import pytest

from conftest import SHARED

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def report():
    import expression_data as ed
    import fusion_v2 as v2

    folder = SHARED / "data" / "expressions"
    rows = ed.read_labels(folder)
    y = np.array([label for _, label in rows])
    readings = ed.read_conditions(folder, ed.DEFAULT_CACHE)
    return v2.cross_validate(readings, y, [ed.subject_of(p.name) for p, _ in rows], workers=2)


def test_default_head_beats_both_cnns_and_the_old_fusions_on_five_classes_at_every_size(report):
    for cond, part in report["conditions"].items():
        five = {name: part[name]["macro_recall_5"] for name in ("cnn", "faceapi", "fusion-v1", "fusion-v2", "fusion")}
        assert five["fusion"] > max(five["cnn"], five["faceapi"], five["fusion-v1"], five["fusion-v2"]), (cond, five)
    assert report["conditions"]["full"]["fusion"]["macro_recall_5"] >= 0.70
    assert report["conditions"]["48px"]["fusion"]["macro_recall_5"] >= 0.70
    assert report["conditions"]["32px"]["fusion"]["macro_recall_5"] >= 0.65
    assert report["conditions"]["32px"]["fusion"]["macro_recall"] >= 0.52


def test_test_time_flip_does_not_lose_on_seven_classes_at_any_size(report):
    for cond, part in report["conditions"].items():
        assert part["fusion"]["macro_recall"] >= part["fusion-v2"]["macro_recall"], cond
    assert report["conditions"]["full"]["fusion"]["macro_recall"] >= 0.53


def test_default_head_stays_calibrated_at_every_size(report):
    for cond, part in report["conditions"].items():
        assert part["fusion"]["calibration"]["max_abs_error"] <= 0.025, cond
        assert part["no_face_rate"] < 0.04, cond
