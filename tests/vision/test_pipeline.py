"""vision.pipeline's FrameLoop: windows of at most `batch_frames` frames and `window_bytes` of what they hold
(frames, or with the fusion heads the crops cut as each frame comes), and what comes out does not depend on
the window."""
import dataclasses

import numpy as np
import pytest
from builders import ROOT

from vision.capture import Frame, SourceSpec
from vision.pipeline import FrameLoop, Stages, analyze_job
from vision.settings import Settings


class Windows(FrameLoop):
    """Records the size of every window flushed (the stages are not run)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.sizes, self.held = [], []

    def flush(self):
        window = self.take_window()
        if window:
            self.sizes.append(len(window))
            self.held.append(sum(p.nbytes for p in window))


class NoLandmarks:
    def landmark(self, frame):
        return np.zeros((0, 478, 3), np.float32), np.zeros((0, 52), np.float32), np.zeros((0, 4, 4), np.float32)


class Untracked:
    def update(self, obs):
        return obs


class WholeFrames:
    """A classifier that reads whole frames (no `cut`): the window keeps the frames."""


def frames(n, h, w):
    image = np.zeros((h, w, 3), np.uint8)
    return [Frame("s", i, i / 25, image) for i in range(n)]


def stages(classifier=None):
    return Stages(NoLandmarks(), classifier or WholeFrames(), Untracked(), np.zeros((0, 4), np.float32))


def test_a_window_holds_batch_frames_or_window_bytes_of_pixels_whichever_comes_first():
    small = Windows(stages(), [], batch_frames=32, window_bytes=64 << 20)
    small.run(frames(70, 360, 640))  # 0.7 MB a frame: 32 frames fit
    assert small.sizes == [32, 32, 6]
    big = Windows(stages(), [], batch_frames=32, window_bytes=64 << 20)
    big.run(frames(25, 1080, 1920))  # 6.2 MB a frame: 11 frames reach 64 MiB
    assert big.sizes == [11, 11, 3]
    one = Windows(stages(), [], batch_frames=1)
    one.run(frames(3, 360, 640))
    assert one.sizes == [1, 1, 1]
    with pytest.raises(ValueError):
        FrameLoop(stages(), [], batch_frames=0)


def test_the_output_does_not_depend_on_the_window():
    spec = SourceSpec("two_faces.mp4", "video", str(ROOT / "fixtures" / "two_faces.mp4"))
    out = {}
    for batch in (1, 5, 32):
        settings = dataclasses.replace(Settings(scene="single"), batch_frames=batch)
        [(cols, report)] = analyze_job([spec], settings)
        out[batch] = cols
    assert len(out[1]["t"]) > 20
    for batch in (5, 32):
        for name, values in out[1].items():
            if values.dtype.kind == "f":  # the same faces in other ONNX batches: float noise at most
                np.testing.assert_allclose(out[batch][name], values, rtol=0, atol=1e-5, err_msg=name)
            else:
                np.testing.assert_array_equal(out[batch][name], values, err_msg=name)


def test_with_a_fusion_head_a_window_holds_the_crops_of_the_faces_it_reads_not_the_frames():
    from vision.capture import open_source
    from vision.pipeline import build_stages, model_files

    settings = Settings(scene="single")  # the default classifier, a fusion head; crops every 0.1 s per track
    spec = SourceSpec("two_faces.mp4", "video", str(ROOT / "fixtures" / "two_faces.mp4"))
    stages = build_stages(settings, "video", model_files(settings))
    try:
        loop = Windows(stages, [], settings.batch_frames, settings.expression_every_s)
        source = open_source(spec)
        try:
            loop.run(source)
        finally:
            source.close()
    finally:
        stages.close()
    per_face = 64 * 64 + 112 * 112 * 3  # fer's gray crop and face-api's colour crop, uint8
    assert loop.sizes and sum(loop.sizes) > 20
    assert all(held % per_face == 0 for held in loop.held)  # crops only: no frame's pixels
    assert 0 < sum(loop.held) < sum(loop.sizes) * per_face * 2  # faces of some frames, not of every frame
