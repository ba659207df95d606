"""vision.pipeline's FrameLoop: windows of at most `batch_frames` frames and `window_bytes` of pixels, and
what comes out does not depend on the window."""
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
        self.sizes = []

    def flush(self):
        if self._frames:
            self.sizes.append(len(self.take_window()[0]))


class NoLandmarks:
    def landmark(self, frame):
        return np.zeros((0, 478, 3), np.float32), np.zeros((0, 52), np.float32), np.zeros((0, 4, 4), np.float32)


def frames(n, h, w):
    image = np.zeros((h, w, 3), np.uint8)
    return [Frame("s", i, i / 25, image) for i in range(n)]


def stages():
    return Stages(NoLandmarks(), None, None, np.zeros((0, 4), np.float32))


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
