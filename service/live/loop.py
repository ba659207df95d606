"""The live frame loop: frames from the reader thread into the analysis until the source ends, the
duration passes or a signal asks to stop; a gap in the source ends the seconds in progress."""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

from vision.capture import Frame
from vision.pipeline import FrameLoop


class LiveAnalysis:
    """FrameLoop (one frame per window) -> [batcher, timing]; `cut()` at a gap flushes the seconds in
    progress and starts the tracker afresh, with ids above every id used so far."""

    def __init__(self, loop: FrameLoop, tracker, batcher, timing):
        self.loop, self.tracker, self.batcher, self.timing = loop, tracker, batcher, timing

    def push(self, frame: Frame) -> None:
        self.timing.reading(frame.captured)
        self.loop.push(frame)

    def finish(self) -> None:
        self.loop.flush()
        self.batcher.flush()

    def cut(self) -> None:
        self.finish()
        self.tracker.reset()
        self.batcher.restart_ids()


def pump(reader, analysis: LiveAnalysis, outbox, metrics, stop: threading.Event,
         duration_s: float | None = None) -> None:
    """Newest frames from `reader` into `analysis`, gaps into `outbox`, until the reader is finished,
    `stop` is set or `duration_s` has passed."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        frame = reader.get(0.25)
        gaps = reader.take_gaps()
        if gaps:
            analysis.cut()
            for gap in gaps:
                outbox.gap(gap)
        metrics.count(reader)
        if frame is None and reader.finished.is_set():
            frame = reader.get(0)
            if frame is None:
                break
        if frame is not None:
            analysis.push(frame)


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)) -> Iterator[threading.Event]:
    """An event set by SIGINT / SIGTERM while the block runs; the previous handlers come back after it."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in signals}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
