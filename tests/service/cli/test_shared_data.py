"""Integration and golden-metric tests on ../shared data (CI has it beside the project)."""
import json

import pandas as pd
import pytest

from builders import SHARED, run_cli

pytestmark = pytest.mark.shared
VIDEO = SHARED / "data" / "video"


def test_track_ends_when_the_face_leaves(tmp_path):
    r = run_cli("analyze", VIDEO / "face_noface.mov", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    obs = pd.read_parquet(tmp_path / "observations.parquet")
    summary = json.loads((tmp_path / "summary.json").read_text())
    first = obs[obs["track_id"] == obs["track_id"].iloc[0]]
    assert first["frame"].min() == 0
    assert (first["frame"].diff().dropna() == 1).all()  # one unbroken track while the face is there
    end = first["frame"].max()
    assert 40 < end < summary["frames_analysed"] - 60  # ...and it ends when the face leaves
    later = obs[obs["frame"] > end]
    # whatever is detected after a gap longer than --max-lost is a new anonymous id
    assert not (later["track_id"] == first["track_id"].iloc[0]).any()


def test_no_face_video_gives_zero_rows_exit_0_and_a_message(tmp_path):
    r = run_cli("analyze", VIDEO / "no_face.mp4", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no faces found in no_face.mp4" in r.stderr
    assert len(pd.read_parquet(tmp_path / "observations.parquet")) == 0
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert len(curves) >= 4 and (curves["n_faces"] == 0).all()


def test_expressive_clip_goes_from_sad_to_happy(tmp_path):
    r = run_cli("analyze", VIDEO / "WolfgangLanger_Pexels.mp4", "--out", tmp_path, "--fps", "6")
    assert r.returncode == 0, r.stderr
    c = pd.read_csv(tmp_path / "curves.csv")
    assert c["p_sadness"][c["t"] < 4].mean() > 0.5
    assert c["p_happiness"][c["t"] >= 12].mean() > 0.7
    assert c["valence"][c["t"] >= 12].mean() > 0.5 > c["valence"][c["t"] < 4].mean()
    assert c["n_faces"].max() == 1


def test_fusion_head_golden_metrics():
    """Subject-disjoint cross-validated macro recall of the shipped recipe on the shared photos."""
    import train_fusion_head as tfh
    import expression_data as ed

    data = ed.extract(SHARED / "data" / "expressions")
    report = tfh.cross_validate(data)
    assert report["fusion"]["all"]["macro_recall"] >= 0.53
    assert report["fusion"]["web"]["macro_recall"] > report["cnn_alone"]["web"]["macro_recall"]
    assert report["fusion"]["all"]["macro_recall"] > report["blendshapes_geometry_lr"]["all"]["macro_recall"]
    assert report["calibration"]["max_abs_share_error"] < 0.03
    assert report["no_face_rate"] < 0.04
