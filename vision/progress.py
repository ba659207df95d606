"""The progress bar of `audience analyze` and `audience batch`: tqdm on stderr (rate and ETA), shown only on a
terminal unless forced (`enabled=True`), off with `--quiet` (`enabled=False`); no total for streams."""
from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    """advance(frames, faces) per analysed frame, close() once; the faces seen so far ride beside the rate."""

    def __init__(self, total: int | None, label: str = "analysing", stream=None, enabled: bool | None = None,
                 min_interval_s: float = 0.2):
        stream = stream or sys.stderr
        if enabled is None:
            enabled = hasattr(stream, "isatty") and stream.isatty()
        self.faces = 0
        self._bar = tqdm(total=total or None, desc=label, unit="frame", file=stream, disable=not enabled,
                         mininterval=min_interval_s, dynamic_ncols=True)

    def advance(self, frames: int = 1, faces: int = 0) -> None:
        if faces:
            self.faces += faces
            self._bar.set_postfix_str(f"{self.faces} faces", refresh=False)
        self._bar.update(frames)

    def close(self) -> None:
        self._bar.close()
