"""A one-line progress bar on a terminal; silent when stderr is not a TTY."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int | None, label: str = "analysing", stream=None, enabled: bool | None = None,
                 min_interval_s: float = 0.2):
        self.stream = stream or sys.stderr
        self.enabled = (hasattr(self.stream, "isatty") and self.stream.isatty()) if enabled is None else enabled
        self.total, self.label, self.done, self.faces = total, label, 0, 0
        self._started = self._last = time.monotonic()
        self.min_interval_s = min_interval_s

    def advance(self, frames: int = 1, faces: int = 0) -> None:
        self.done += frames
        self.faces += faces
        now = time.monotonic()
        if self.enabled and now - self._last >= self.min_interval_s:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"{self.label} [{bar:<30}] {self.done}/{self.total} frames"
        else:
            text = f"{self.label} {self.done} frames"
        self.stream.write(f"\r{text}, {self.faces} faces, {rate:.1f} fps ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
