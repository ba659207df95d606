import cv2
import numpy as np
import pytest

from vision.capture import SourceSpec, open_source, read_image, resolve_inputs
from vision.errors import InputNotFound, NoInputs, UnsupportedInput


def write_video(path, n=30, fps=10, size=(64, 48), fourcc="MJPG"):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), i * 8 % 255, np.uint8))
    w.release()
    return path


def test_resolve_inputs(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.mp4").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    specs = resolve_inputs([str(tmp_path), "0", "rtsp://127.0.0.1/x"])
    assert [(s.name, s.kind, s.in_folder) for s in specs] == [
        ("a.jpg", "image", True), ("b.mp4", "video", True), ("camera:0", "stream", False),
        ("rtsp://127.0.0.1/x", "stream", False)]
    with pytest.raises(InputNotFound):
        resolve_inputs([str(tmp_path / "missing.mp4")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoInputs):
        resolve_inputs([str(tmp_path / "empty")])


def test_analysis_rate_skips_frames(tmp_path):
    path = write_video(tmp_path / "v.avi", n=30, fps=10)
    spec = SourceSpec("v.avi", "video", str(path))
    with open_source(spec) as src:
        assert len(list(src)) == 30
    with open_source(spec, analysis_fps=2) as src:
        frames = list(src)
        assert [f.index for f in frames] == [0, 5, 10, 15, 20, 25]
        assert [f.t for f in frames] == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5])
        assert src.frames_read == 30 and not src.stopped_early


def test_truncated_video_reports_where_it_stopped(tmp_path):
    path = write_video(tmp_path / "full.avi", n=60)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with open_source(SourceSpec("cut.avi", "video", str(cut))) as src:
        frames = list(src)
    assert 0 < len(frames) < 60 and src.stopped_early and src.frames_expected == 60


@pytest.mark.parametrize("content", [b"", b"not a video at all", bytes(range(256)) * 200])
def test_unreadable_videos_raise(tmp_path, content):
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(UnsupportedInput):
        with open_source(SourceSpec("bad.mp4", "video", str(p))) as src:
            list(src)


def test_read_image_converts_gray_16bit_and_alpha(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), np.full((5, 6), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "d.png"), np.full((5, 6), 65535, np.uint16))
    cv2.imwrite(str(tmp_path / "a.png"), np.full((5, 6, 4), 50, np.uint8))
    for name, value in (("g.png", 100), ("d.png", 255), ("a.png", 50)):
        img = read_image(str(tmp_path / name))
        assert img.shape == (5, 6, 3) and img.dtype == np.uint8 and img[0, 0, 0] == value
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    assert read_image(str(tmp_path / "x.jpg")) is None
    with pytest.raises(UnsupportedInput):
        open_source(SourceSpec("x.jpg", "image", str(tmp_path / "x.jpg")))
