"""`audience analyze` end to end on the project's own fixtures, in a subprocess like a user runs it."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from builders import FIXTURES, run_cli
from vision.labels import EMOTIONS, VALUE_COLUMNS
from vision.table import COLUMNS

NATIVE_LOG_MARKERS = ("W0000", "I0000", "INFO: Created TensorFlow", "Logging before InitGoogle")


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video")
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--out", out)
    return r, out


def test_video_outputs(video_run):
    r, out = video_run
    assert r.returncode == 0, r.stderr
    assert not any(m in r.stderr for m in NATIVE_LOG_MARKERS), r.stderr
    assert r.stderr.strip() == ""  # not a TTY: no progress bar
    assert "2 source" not in r.stdout and "observations.parquet" in r.stdout
    obs = pd.read_parquet(out / "observations.parquet")
    assert list(obs.columns) == list(COLUMNS)
    assert set(obs["emotion"]) <= set(EMOTIONS)
    assert obs[[f"p_{e}" for e in EMOTIONS]].sum(axis=1).between(0.999, 1.001).all()
    assert obs[["x", "y", "w", "h"]].stack().between(0, 1).all()
    for col, lo, hi in (("valence", -1, 1), ("attention", 0, 1), ("smile", 0, 1), ("mouth_open", 0, 1)):
        assert obs[col].between(lo, hi).all(), col
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_analysed"] == 75 and summary["faces"] == len(obs)
    assert set(summary["models"]) == {"face_landmarker", "cnn", "cnn_features", "faceapi", "fusion"}  # the default: v6, which runs fer with features
    assert (out / "curves.png").stat().st_size > 10_000
    curves = pd.read_csv(out / "curves.csv")
    assert curves["t"].tolist() == [0, 1, 2, 3, 4]
    assert {f"{c}_ci95" for c in VALUE_COLUMNS} <= set(curves.columns)
    assert curves["n_faces"].tolist()[:2] == [2, 2] and curves["n_faces"][2] == 1
    assert "at most every 0.1 s per face" in (out / "report.html").read_text()  # the default crop cadence, said


def test_video_tracks_end_when_a_face_leaves_and_restart_when_it_returns(video_run):
    _, out = video_run
    obs = pd.read_parquet(out / "observations.parquet")
    right = obs[obs["x"] > 0.45]
    left = obs[obs["x"] < 0.45]
    assert left["track_id"].nunique() == 1  # stable while it stays
    before, after = right[right["t"] < 2.0], right[right["t"] >= 3.5]
    assert before["track_id"].nunique() == 1 and after["track_id"].nunique() == 1
    assert before["track_id"].iloc[0] != after["track_id"].iloc[0]
    assert right[(right["t"] >= 2.0) & (right["t"] < 3.5)].empty
    assert len(left) >= 70 and len(before) >= 28 and len(after) >= 20


@pytest.mark.parametrize("every", [None, "0.5"])  # None: the default (0.1 s)
def test_expression_every_reads_each_track_at_that_rate_and_changes_nothing_else(every, tmp_path):
    every_frame, rated = tmp_path / "every-frame", tmp_path / "rated"
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--out", every_frame, "--expression-every", "0")
    assert r.returncode == 0, r.stderr
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--out", rated, *(["--expression-every", every] if every else []))
    assert r.returncode == 0, r.stderr
    every_s = float(every or 0.1)
    a, b = pd.read_parquet(every_frame / "observations.parquet"), pd.read_parquet(rated / "observations.parquet")
    probs = [f"p_{e}" for e in EMOTIONS]
    same = [c for c in COLUMNS if c not in probs + ["emotion", "valence"] and not c.endswith("_delta")]
    pd.testing.assert_frame_equal(a[same], b[same])  # boxes, ids, metrics, pose, attention: every frame still
    # where a crop was read, the fusion head gives what reading every frame gives; between reads its crop
    # reading is carried and the head runs on the frame's own blendshapes, so the probabilities differ
    fresh = np.all(np.abs(a[probs].to_numpy() - b[probs].to_numpy()) < 1e-6, axis=1)
    assert 0 < fresh.mean() < (0.5 if every_s >= 0.5 else 1)  # 15 fps: at 0.1 s every other frame is read
    for _, track in b.assign(fresh=fresh).groupby("track_id"):
        assert track["fresh"].iloc[0]  # a new track is read at once
        assert np.all(np.diff(track["t"][track["fresh"]]) >= every_s - 1e-6)  # then at most every `every_s`
    assert json.loads((rated / "summary.json").read_text())["settings"]["expression_every_s"] == every_s
    assert json.loads((every_frame / "summary.json").read_text())["settings"]["expression_every_s"] == 0


def test_images_folder_csv(tmp_path):
    r = run_cli("analyze", FIXTURES / "images", "--out", tmp_path, "--format", "csv", "--classifier", "cnn")
    assert r.returncode == 0, r.stderr
    assert "1 of 3 images had no face" in r.stderr
    obs = pd.read_csv(tmp_path / "observations.csv")
    assert sorted(obs["source"]) == ["astronaut.jpg", "mirrored.jpg"]
    assert (obs["frame"] == 0).all() and (obs["t"] == 0).all()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images_without_faces"] == 1 and set(summary["models"]) == {"face_landmarker", "cnn"}


def test_fps_setting_and_workers_do_not_change_results(tmp_path):
    args = ["analyze", FIXTURES / "two_faces.mp4", FIXTURES / "images" / "astronaut.jpg", "--fps", "5"]
    r1 = run_cli(*args, "--out", tmp_path / "one", "--workers", "1")
    r2 = run_cli(*args, "--out", tmp_path / "two", "--workers", "2")
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    a = pd.read_parquet(tmp_path / "one" / "observations.parquet")
    b = pd.read_parquet(tmp_path / "two" / "observations.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert sorted(a[a["source"] == "two_faces.mp4"]["frame"].unique())[:4] == [0, 3, 6, 9]


def write_avi(path, n=40):
    src = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4"))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 360))
    for _ in range(n):
        ok, frame = src.read()
        w.write(frame)
    w.release()
    src.release()


def test_truncated_video_is_analysed_up_to_where_it_stops(tmp_path):
    full = tmp_path / "full.avi"
    write_avi(full)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    r = run_cli("analyze", cut, "--out", tmp_path / "o")
    assert r.returncode == 6, r.stderr
    assert "stopped decoding at frame" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert len(pd.read_parquet(tmp_path / "o" / "observations.parquet")) > 0


@pytest.mark.parametrize("make,code,text", [
    (lambda p: p / "missing.mp4", 3, "no such file"),
    (lambda p: (p / "zero.mp4").write_bytes(b"") and p / "zero.mp4" or p / "zero.mp4", 4, "empty file"),
    (lambda p: (p / "r.mp4").write_bytes(np.random.default_rng(0).bytes(40_000)) and p / "r.mp4", 4, "cannot be opened"),
    (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", 4, "cannot be opened"),
    (lambda p: (p / "empty").mkdir() or p / "empty", 5, "no images or videos"),
])
def test_errors_are_one_line_with_documented_codes(tmp_path, make, code, text):
    target = make(tmp_path)
    r = run_cli("analyze", target, "--out", tmp_path / "out")
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and lines[0].startswith("audience: error:")


def test_usage_errors(tmp_path):
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--out", tmp_path, "--bucket", "0")
    assert r.returncode == 2 and "must be > 0" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("analyze", FIXTURES / "two_faces.mp4")
    assert r.returncode == 2


def test_content_offset_moves_the_curve(tmp_path):
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--out", tmp_path, "--content-offset", "2", "--bucket", "0.5",
                "--fps", "4")
    assert r.returncode == 0, r.stderr
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert curves["t"].iloc[0] == -2.0 and curves["t"].iloc[-1] == 2.5


def test_http_stream(tmp_path):
    from mjpeg_server import MjpegServer

    cap = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4"))
    frames = []
    for _ in range(30):
        ok, f = cap.read()
        frames.append(f)
    with MjpegServer(frames, fps=30) as server:
        r = run_cli("analyze", server.url, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    obs = pd.read_parquet(tmp_path / "observations.parquet")
    assert obs["source"].iloc[0] == server.url
    assert obs["track_id"].nunique() == 2 and obs["frame"].nunique() >= 25
    assert obs.groupby("track_id")["t"].apply(lambda t: t.is_monotonic_increasing).all()


def test_stream_that_delivers_nothing_is_an_error(tmp_path):
    with __import__("mjpeg_server").MjpegServer([], fps=30) as server:
        r = run_cli("analyze", server.url, "--out", tmp_path)
    assert r.returncode == 4, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
