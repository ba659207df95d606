"""Capture: turn what the user named (files, folders, a webcam index, a stream URL) into frames.

`resolve_inputs` checks and expands the names into `SourceSpec`s; `open_source` gives an iterable of
`Frame`s for one spec, released deterministically (use it as a context manager). Decoding skips what the
analysis rate does not need: skipped frames are only grabbed, never converted.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import InputNotFound, NoInputs, UnsupportedInput

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts", ".mjpeg"})


STREAM_TIMEOUT_MS = 5000  # opening a URL, or waiting for its next frame, longer than this fails
MAX_PIXELS = 100_000_000  # an image or video frame larger than this (8K is 33 Mpx) is refused before decoding


@dataclass(frozen=True)
class Frame:
    source: str
    index: int
    t: float  # seconds since the source started
    image: np.ndarray  # BGR uint8, H x W x 3
    captured: float = 0.0  # time.monotonic() when it was read (live analysis measures its latency)


@dataclass(frozen=True)
class SourceSpec:
    name: str  # what outputs call it (file name, "camera:0", the URL)
    kind: str  # "video" | "image" | "stream"
    location: str | int
    in_folder: bool = False  # found by expanding a folder (a bad file there is skipped, not fatal)
    start_frame: int = 0  # a segment of a video: frames [start_frame, end_frame) are yielded
    end_frame: int | None = None


def _spec_for_file(path: Path, in_folder: bool = False) -> SourceSpec:
    kind = "image" if path.suffix.lower() in IMAGE_EXTS else "video"
    return SourceSpec(path.name, kind, str(path), in_folder)


def resolve_inputs(inputs: list[str]) -> list[SourceSpec]:
    """Expand user inputs into sources. Raises InputNotFound / NoInputs with a one-line message."""
    specs: list[SourceSpec] = []
    for raw in inputs:
        if raw.isdigit():
            specs.append(SourceSpec(f"camera:{raw}", "stream", int(raw)))
            continue
        if "://" in raw:
            specs.append(SourceSpec(raw, "stream", raw))
            continue
        path = Path(raw)
        if not path.exists():
            raise InputNotFound(f"{raw}: no such file or folder")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            if not files:
                raise NoInputs(f"{raw}: folder has no images or videos "
                               f"(looked for {', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")
            specs.extend(_spec_for_file(p, True) for p in files)
        elif not path.is_file():  # a FIFO, device or socket: reading it could block forever
            raise UnsupportedInput(f"{raw}: not a regular file (a pipe, device or socket); name a file or folder")
        else:
            specs.append(_spec_for_file(path))
    return specs


def check_image_pixels(path: str) -> None:
    """Refuse (UnsupportedInput) an image whose header declares more than MAX_PIXELS, without decoding it.
    Formats Pillow cannot read a header of are left to OpenCV (which has its own 2^30-pixel limit)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Image.DecompressionBombError:  # Pillow's own limit (178 Mpx) is above ours
            raise UnsupportedInput(f"{path}: its header declares over {MAX_PIXELS:,} pixels (8K is 33 million); "
                                   "scale it down first") from None
        except (UnidentifiedImageError, OSError, ValueError):
            return
    _check_pixels(path, width, height)


def _check_pixels(what: str, width: float, height: float) -> None:
    if width * height > MAX_PIXELS:
        raise UnsupportedInput(f"{what}: {int(width)}x{int(height)} px is over the {MAX_PIXELS:,}-pixel "
                               "limit (8K is 33 million); scale it down first")


def read_image(path: str) -> np.ndarray | None:
    """Decode an image file to 8-bit BGR (grayscale, 16-bit and alpha are converted); None if it won't."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def probe_video(location: str) -> tuple[int, float]:
    """(frame count, fps) as the container announces them; 0 where unknown. Counts are estimates."""
    cap = cv2.VideoCapture(str(location), cv2.CAP_FFMPEG)
    try:
        count, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return (int(count) if count and count > 0 else 0), (float(fps) if fps and math.isfinite(fps) and fps > 0 else 0.0)


class ImageSource:
    """One still image: one frame, index 0, t 0."""

    fps = 0.0

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        self.frames_read = 0
        self.frames_expected = 1
        self.stopped_early = False
        check_image_pixels(str(spec.location))
        self._image = read_image(str(spec.location))
        if self._image is None:
            raise UnsupportedInput(f"{spec.location}: not a readable image")

    def __iter__(self) -> Iterator[Frame]:
        self.frames_read = 1
        yield Frame(self.spec.name, 0, 0.0, self._image)

    def close(self) -> None:
        self._image = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoSource:
    """A video file or a live stream through OpenCV, yielding the frames an analysis rate selects.

    every: analyse at most `analysis_fps` frames per second of the source's own clock (None = every frame).
    After iteration: frames_read (decoded or grabbed), frames_expected (container's count, 0 if unknown),
    stopped_early (a file that stopped decoding before its expected end).
    """

    def __init__(self, spec: SourceSpec, analysis_fps: float | None = None, wall_clock: bool = False):
        if analysis_fps is not None and analysis_fps <= 0:
            raise ValueError("analysis_fps must be > 0")
        self.spec = spec
        self.analysis_fps = analysis_fps
        self.wall_clock = wall_clock  # a stream's frames timed by arrival (live), not by its own timestamps
        self.frames_read = 0
        self.stopped_early = False
        if spec.kind == "video":
            self._cap = cv2.VideoCapture(str(spec.location), cv2.CAP_FFMPEG)
        elif isinstance(spec.location, str):  # a URL: give up on a dead or silent server instead of hanging
            self._cap = cv2.VideoCapture(spec.location, cv2.CAP_FFMPEG, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
        else:
            self._cap = cv2.VideoCapture(spec.location)
        if not self._cap.isOpened():
            self._cap.release()
            what = "a video or image (corrupt or truncated?)" if spec.kind == "video" else "an open stream"
            raise UnsupportedInput(f"{spec.location}: cannot be opened as {what}")
        try:
            _check_pixels(str(spec.location), self._cap.get(cv2.CAP_PROP_FRAME_WIDTH),
                          self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        except UnsupportedInput:
            self._cap.release()
            raise
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else 30.0
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) if spec.kind == "video" else 0
        self.frames_expected = int(count) if count and count > 0 else 0

    def __iter__(self) -> Iterator[Frame]:
        """Frames the analysis rate selects: frame i is selected when floor(t_i * rate) moves on from the
        previous frame's. A segment decodes (grabs) from the start without converting, so it selects
        exactly the frames the whole video would (seeking is not frame-accurate in every container)."""
        cap, live = self._cap, self.spec.kind == "stream"
        start, end = self.spec.start_frame, self.spec.end_frame
        started = time.monotonic()
        next_t = 0.0
        period = 1.0 / self.analysis_fps if self.analysis_fps else 0.0
        index = 0
        last_t = -1.0
        while end is None or index < end:
            if not cap.grab():
                break
            if self.wall_clock and live:
                t = max(time.monotonic() - started, last_t + 1e-3)
            else:
                t = self._stream_time(started, last_t) if live else index / self.fps
            last_t = t
            wanted = t + 1e-9 >= next_t
            if wanted:
                next_t = (math.floor(t / period + 1e-9) + 1) * period if period else 0.0
            if index >= start:
                self.frames_read += 1
                if wanted:
                    ok, image = cap.retrieve()
                    if ok and image is not None:
                        yield Frame(self.spec.name, index, t, image)
            index += 1
        expected = self.frames_expected if end is None else min(end, self.frames_expected or end)
        expected = max(expected - start, 0)
        # containers' frame counts are estimates (seen: 98 announced, 95 decodable in an intact file)
        slack = max(5, int(0.03 * expected))
        if self.spec.kind == "video" and expected and self.frames_read < expected - slack:
            self.stopped_early = True
        if self.frames_read == 0 and start == 0:
            if live:
                raise UnsupportedInput(f"{self.spec.location}: the stream delivered no frame")
            raise UnsupportedInput(f"{self.spec.location}: no frame could be decoded (not a video, or corrupt)")

    def _stream_time(self, started: float, last_t: float) -> float:
        """A stream's own clock (its timestamps, for URLs) when it has one that moves forward, else the
        time since it was opened (webcams)."""
        pos = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if pos and math.isfinite(pos) and pos / 1000.0 > last_t:
            return pos / 1000.0
        return max(time.monotonic() - started, last_t + 1e-3)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_source(spec: SourceSpec, analysis_fps: float | None = None) -> ImageSource | VideoSource:
    """Open one source; raise UnsupportedInput if it cannot be read at all."""
    if spec.kind == "image":
        return ImageSource(spec)
    if spec.kind == "video" and Path(str(spec.location)).stat().st_size == 0:
        raise UnsupportedInput(f"{spec.location}: empty file, not a video or image")
    return VideoSource(spec, analysis_fps)
