"""Reading a live source for real-time analysis: a reader thread that keeps only the newest frame,
reopens a source that stops with backoff, and records the gaps.

Timelines: a file's frames keep the file's own time (so live analysis of a file equals `analyze` of it);
a camera or URL gets wall-clock seconds since `origin` (kept across restarts by the caller), so a
reconnect or a restart continues the same screening timeline.

Policies: `blocking` (a file analysed as fast as possible: nothing is dropped, the reader waits for the
analysis) or newest-wins (cameras, and files paced with `realtime`): a frame the analysis has not taken
when the next one arrives is dropped and counted.
"""
from __future__ import annotations

import dataclasses
import threading
import time

from .capture import Frame, SourceSpec, VideoSource
from .errors import AudienceError


@dataclasses.dataclass(frozen=True)
class Gap:
    start: float  # source timeline seconds
    end: float
    reason: str


class LiveReader:
    def __init__(self, spec: SourceSpec, analysis_fps: float | None, realtime: bool = False,
                 origin: float | None = None, max_backoff_s: float = 5.0):
        if spec.kind not in ("video", "stream"):
            raise ValueError("live sources are videos, cameras or stream URLs")
        self.spec, self.analysis_fps, self.realtime = spec, analysis_fps, realtime
        self.is_file = spec.kind == "video"
        self.blocking = self.is_file and not realtime
        self.origin = time.time() if origin is None else origin
        self.max_backoff_s = max_backoff_s
        self.state = "starting"
        self.frames_read = self.frames_dropped = self.reconnects = 0
        self.error: AudienceError | None = None  # a file that cannot be read at all
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._gaps: list[Gap] = []
        self._gap_start: float | None = None
        self._gap_reason = ""
        self._last_t: float | None = None
        self._thread = threading.Thread(target=self._run, name="live-reader", daemon=True)

    # consumer side
    def start(self) -> "LiveReader":
        self._thread.start()
        return self

    def get(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken, or None after `timeout` seconds."""
        with self._cond:
            if self._slot is None:
                self._cond.wait(timeout)
            frame, self._slot = self._slot, None
            self._cond.notify_all()
            return frame

    def take_gaps(self) -> list[Gap]:
        with self._cond:
            gaps, self._gaps = self._gaps, []
            return gaps

    def open_gap(self) -> Gap | None:
        """The gap in progress (source down now), ending now; None while frames flow."""
        with self._cond:
            if self._gap_start is None:
                return None
            return Gap(self._gap_start, max(self._now(), self._gap_start), self._gap_reason)

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=10)

    # reader thread
    def _now(self) -> float:
        return time.time() - self.origin

    def _put(self, frame: Frame) -> None:
        with self._cond:
            if self.blocking:
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(0.1)
            elif self._slot is not None:
                self.frames_dropped += 1
            self._slot = frame
            self._cond.notify_all()

    def _begin_gap(self, at: float, reason: str) -> None:
        with self._cond:
            if self._gap_start is None:
                self._gap_start, self._gap_reason = at, reason

    def _end_gap(self, at: float) -> None:
        with self._cond:
            if self._gap_start is not None:
                self._gaps.append(Gap(self._gap_start, max(at, self._gap_start), self._gap_reason))
                self._gap_start = None

    def _run(self) -> None:
        backoff = 0.25
        try:
            while not self._stop.is_set():
                try:
                    if self._read_until_it_stops():
                        backoff = 0.25
                    reason = "no frames from the source"  # it ended, stalled past its read timeout, or broke
                except AudienceError as exc:  # it cannot be opened, or opened but delivered nothing
                    if self.is_file:
                        self.error = exc
                        return
                    reason = "cannot open the source"
                if self.is_file or self._stop.is_set():
                    return
                self.state = "reconnecting"  # a gap until frames come back
                self._begin_gap(self._last_t if self._last_t is not None else self._now(), reason)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                self.reconnects += 1
        finally:
            self.state = "stopped"
            self.finished.set()
            with self._cond:
                self._cond.notify_all()

    def _read_until_it_stops(self) -> bool:
        """Open the source and hand its frames on until it ends; whether any frame came."""
        source = VideoSource(self.spec, self.analysis_fps, wall_clock=True)
        started, delivered = time.monotonic(), False
        try:
            for frame in source:
                if self._stop.is_set():
                    break
                if self.realtime:  # a file behaves like a camera: frames arrive at its own rate
                    delay = started + frame.t - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                t = frame.t if self.is_file else self._now()
                self._end_gap(t)
                self.state, delivered = "running", True
                self.frames_read += 1
                self._last_t = t
                self._put(dataclasses.replace(frame, t=t, captured=time.monotonic()))
        finally:
            source.close()
        return delivered
