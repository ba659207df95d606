"""The frame loop, and analysis of one source as a pure function of (source, settings).

    source -> landmarker -> classifier -> describe -> tracker -> sinks

`analyze_source` builds the stages, runs the loop and hands back the observations table plus a report,
so inputs can be spread over processes (and later machines) and merged in input order.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from .capture import Frame, SourceSpec, open_source
from .classifier import CnnClassifier, FusionClassifier
from .describe import describe
from .landmarker import Landmarker, LandmarkerOptions
from .models import model_file
from .observation import Observation
from .table import TableSink
from .tracker import FaceTracker

CLASSIFIERS = ("fusion", "cnn")


@dataclass(frozen=True)
class Settings:
    fps: float | None = None  # analysis rate; None = every frame (files)
    classifier: str = "fusion"
    max_faces: int = 8
    max_lost_s: float = 1.0  # a face unseen this long ends its track
    threads: int = 1  # ONNX Runtime threads per process

    def __post_init__(self):
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError("fps must be > 0")


@dataclass
class SourceReport:
    source: str
    kind: str
    frames_read: int = 0
    frames_analysed: int = 0
    faces: int = 0
    tracks: int = 0
    source_fps: float = 0.0
    frames_expected: int = 0
    stopped_early: bool = False
    elapsed_s: float = 0.0
    error: str | None = None
    start_frame: int = 0  # first frame of a segment (0 for a whole source)
    analysed_t: list = field(default_factory=list, repr=False)

    def public(self) -> dict:
        d = asdict(self)
        d.pop("analysed_t")
        return d


def frame_loop(frames: Iterable[Frame], stages: list[Callable[[Frame, Observation | None], Observation]],
               sinks: list, on_frame: Callable[[Observation], None] | None = None) -> None:
    """Run every frame through the stages in order and hand the result to every sink."""
    for frame in frames:
        obs = None
        for stage in stages:
            obs = stage(frame, obs)
        for sink in sinks:
            sink.write(obs)
        if on_frame is not None:
            on_frame(obs)


def model_files(settings: Settings) -> dict:
    names = ["face_landmarker", "cnn"] + (["fusion"] if settings.classifier == "fusion" else [])
    return {n: model_file(n) for n in names}


def build_stages(settings: Settings, mode: str, models: dict, closers: list) -> tuple[list, FaceTracker]:
    """Stages as (frame, obs) -> obs callables, and the tracker to reset between sources.
    Objects needing a close are appended to `closers`."""
    landmarker = Landmarker(LandmarkerOptions(models["face_landmarker"].path, mode=mode,
                                              max_faces=settings.max_faces))
    closers.append(landmarker)
    cnn = CnnClassifier(models["cnn"].path, settings.threads)
    classify = FusionClassifier(models["fusion"].path, cnn, settings.threads) if settings.classifier == "fusion" else cnn
    tracker = FaceTracker(max_lost_s=settings.max_lost_s)
    stages = [
        lambda frame, _: landmarker.detect(frame),
        lambda frame, obs: classify(frame.image, obs),
        lambda frame, obs: describe(obs),
        lambda frame, obs: tracker.update(obs),
    ]
    return stages, tracker


class _Counter:
    def __init__(self, report: SourceReport, progress):
        self.report, self.progress, self.tracks = report, progress, set()

    def write(self, obs: Observation) -> None:
        self.report.frames_analysed += 1
        self.report.faces += len(obs)
        self.report.analysed_t.append(obs.t)
        self.tracks.update(obs.track_ids.tolist())
        if self.progress is not None:
            self.progress(obs)


def analyze_job(specs: list[SourceSpec], settings: Settings, progress=None) -> list[tuple[dict, SourceReport]]:
    """Analyse sources with one set of stages: one video or stream, or a run of still images.

    Returns, per source, (observations table columns, report). A source named directly by the user that
    cannot be read raises its AudienceError; one found in a folder is reported (report.error) and skipped.
    A video that stops decoding early returns what decoded, flagged `stopped_early`."""
    mode = "image" if all(s.kind == "image" for s in specs) else "video"
    if mode == "video" and len(specs) != 1:
        raise ValueError("a video job holds exactly one source")
    models = model_files(settings)
    closers: list = []
    results = []
    try:
        stages, tracker = build_stages(settings, mode, models, closers)
        for spec in specs:
            results.append(_run_source(spec, settings, stages, tracker, progress))
    finally:
        for c in closers:
            c.close()
    return results


def _run_source(spec, settings, stages, tracker, progress):
    from .errors import AudienceError

    started = time.perf_counter()
    report = SourceReport(spec.name, spec.kind, start_frame=spec.start_frame)
    table, counter = TableSink(), _Counter(report, progress)
    tracker.reset()
    try:
        source = open_source(spec, settings.fps)
    except AudienceError as exc:
        if not spec.in_folder:
            raise
        report.error = str(exc)
        return table.columns(), report
    try:
        frame_loop(source, stages, [table, counter])
    except AudienceError as exc:
        if not spec.in_folder:
            raise
        report.error = str(exc)
    finally:
        source.close()
    report.frames_read = source.frames_read
    report.frames_expected = source.frames_expected
    report.stopped_early = source.stopped_early
    report.source_fps = source.fps
    report.tracks = len(counter.tracks - {-1})
    report.elapsed_s = time.perf_counter() - started
    return table.columns(), report
