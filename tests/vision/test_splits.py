import numpy as np
import pandas as pd

from builders import FIXTURES, run_cli
from vision.capture import SourceSpec
from vision.splits import split_video, stitch
from vision.table import COLUMNS, empty_columns


def test_split_video_bounds_and_overlap():
    spec = SourceSpec("v.mp4", "video", "v.mp4")
    parts = split_video(spec, frames=3000, fps=25, parts=2, overlap_s=2.0)
    assert [(p.start_frame, p.end_frame, b) for p, b in parts] == [(0, 1500, 0), (1450, None, 1500)]
    assert split_video(spec, frames=1000, fps=25, parts=2, overlap_s=2.0) == [(spec, 0)]  # 40 s: too short
    assert len(split_video(spec, frames=25 * 600, fps=25, parts=4, overlap_s=2.0)) == 4


def rows(frames, ids, xs):
    n = len(frames)
    cols = {c: np.zeros(n, empty_columns()[c].dtype) for c in COLUMNS}
    cols.update(frame=np.asarray(frames), track_id=np.asarray(ids), x=np.asarray(xs, np.float32),
                y=np.full(n, 0.3, np.float32), w=np.full(n, 0.1, np.float32), h=np.full(n, 0.2, np.float32),
                source=np.array(["v"] * n, object))
    return cols


def test_stitch_maps_ids_through_the_overlap_and_drops_it():
    prev = rows([8, 8, 9, 9], [4, 7, 4, 7], [0.1, 0.6, 0.1, 0.6])
    # the new segment numbered the same faces the other way round, and a third face appears at frame 10
    new = rows([8, 8, 9, 9, 10, 10, 10], [2, 1, 2, 1, 2, 1, 3], [0.1, 0.6, 0.1, 0.6, 0.1, 0.6, 0.85])
    out, next_id = stitch(prev, new, boundary=10, next_id=8)
    assert out["frame"].tolist() == [10, 10, 10]
    assert out["track_id"].tolist() == [4, 7, 8] and next_id == 9


def test_long_video_split_over_two_workers_gives_the_same_result(tmp_path):
    import cv2

    cap = cv2.VideoCapture(str(FIXTURES / "two_faces.mp4"))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(f, (320, 180)))
    long = tmp_path / "long.avi"
    w = cv2.VideoWriter(str(long), cv2.VideoWriter_fourcc(*"MJPG"), 15, (320, 180))
    for i in range(15 * 64):  # 64 s: ping-pong over the fixture so faces come and go across the boundary
        k = i % 150
        w.write(frames[k if k < 75 else 149 - k])
    w.release()
    args = ["analyze", long, "--fps", "3"]
    r1 = run_cli(*args, "--out", tmp_path / "one", "--workers", "1")
    r2 = run_cli(*args, "--out", tmp_path / "two", "--workers", "2")
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    a = pd.read_parquet(tmp_path / "one" / "observations.parquet")
    b = pd.read_parquet(tmp_path / "two" / "observations.parquet")
    assert a["frame"].tolist() == b["frame"].tolist()
    assert a["track_id"].tolist() == b["track_id"].tolist()
    assert np.abs(a["p_happiness"] - b["p_happiness"]).max() < 0.05
    sa = pd.read_json(tmp_path / "one" / "summary.json", typ="series")
    sb = pd.read_json(tmp_path / "two" / "summary.json", typ="series")
    for key in ("frames_read", "frames_analysed", "faces", "tracks"):
        assert sa[key] == sb[key], key
