"""The analysis settings: one frozen `Settings`, its defaults written once, checked in `__post_init__`.

`audience analyze`, `batch` and `live` each build one from the same command-line options
(service.cli.options.add_analysis_options, whose defaults are read from these fields); the engine
(vision.pipeline, runner, ray_engine) reads nothing else. Settings are in seconds, not frames.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .audience import PRESENCE_MIN
from .detection import DETECTORS
from .labels import CLASSIFIERS, DEFAULT_MIN_QUALITY, LABEL_RULES
from .onnx import DEVICES
from .reactions import ReactionOptions

SCENES = ("single", "audience", "auto")
AUDIENCE_FPS = 2.0  # the audience scene's analysis rate when none is given: every frame of 100 faces is not needed


@dataclass(frozen=True)
class Settings:
    fps: float | None = None  # analysis rate; None = every frame (files); AUDIENCE_FPS in the audience scene
    classifier: str = "fusion"  # one of vision.labels.CLASSIFIERS
    max_faces: int | None = None  # faces per frame at most; None: 8 (single scene), 500 (audience)
    max_lost_s: float = 1.0  # a face unseen this long ends its track
    threads: int = 1  # ONNX Runtime threads per process
    batch_frames: int = 32  # frames whose faces are classified together (at most 64 MiB held; streams: 1)
    scene: str = "single"  # "single": MediaPipe's own detector (faces near the camera);
    #                        "audience": a detector every detect_every_s + face mesh per face crop (wide shots);
    #                        "auto": resolved to one of them before analysis (see scene.resolve_scene)
    detect_every_s: float = 2.0  # audience scene: seconds between full-frame face detections
    seat_map: str | None = None  # JSON seat map (seats and opt-out regions); see vision.seats
    seat_empty_after_s: float = 10.0  # audience scene: a seat empty this long gives its next face a new id
    confirm_hits: int = 2  # a new track (or learned seat) is confirmed once seen in this many analysed frames
    confirm_within_s: float = 1.0  # ...within this many seconds; before that its faces are not emitted
    detector: str = "centerface+mtcnn"  # the audience scene's face detector, one of vision.detection.DETECTORS
    device: str = "cpu"  # ONNX models: cpu, cuda or auto (vision.onnx; resolve_device once per run)
    presence_min: float = PRESENCE_MIN  # audience scene: a face is read from this landmark presence score up
    min_quality: float = DEFAULT_MIN_QUALITY  # curves count a face's expression from this face quality up
    label_rule: str = "auto"  # how a fusion head names a face's expression (vision.labels.LABEL_RULES)
    reactions: ReactionOptions = ReactionOptions()  # per-viewer smoothing and baselines (vision.reactions)
    expression_every_s: float = 0.1  # a face's crop read at most this often per track, the last crop reading
    #                                  carried between (vision.readings; README: within frame-sampling noise at 0.1);
    #                                  0: read on every analysed frame

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError("fps must be > 0")
        if self.batch_frames < 1:
            raise ValueError("batch_frames must be >= 1")
        if self.scene not in SCENES:
            raise ValueError(f"scene must be one of {', '.join(SCENES)}")
        if self.detect_every_s < 0:
            raise ValueError("detect_every_s must be >= 0")
        if self.confirm_hits < 1:
            raise ValueError("confirm_hits must be >= 1")
        if self.confirm_within_s < 0:
            raise ValueError("confirm_within_s must be >= 0")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}")
        if not 0 <= self.presence_min <= 1:
            raise ValueError("presence_min must be within 0..1")
        if not 0 <= self.min_quality <= 1:
            raise ValueError("min_quality must be within 0..1")
        if not self.expression_every_s >= 0:
            raise ValueError("expression_every_s must be >= 0 seconds")
        if self.label_rule not in LABEL_RULES:
            raise ValueError(f"label_rule must be one of {', '.join(LABEL_RULES)}")
        if not isinstance(self.reactions, ReactionOptions):
            raise ValueError("reactions must be a ReactionOptions")

    @property
    def labels_by(self) -> str:
        """The label rule in force: "balanced" or "probable" ("auto": probable in the audience scene, which the
        command line resolves before analysis, balanced in the single one)."""
        if self.label_rule != "auto":
            return self.label_rule
        return "probable" if self.scene == "audience" else "balanced"

    def with_audience_rate(self) -> Settings:
        """The audience scene without a rate analyses AUDIENCE_FPS frames per second (after resolve_scene)."""
        if self.scene == "audience" and self.fps is None:
            return dataclasses.replace(self, fps=AUDIENCE_FPS)
        return self


@dataclass(frozen=True)
class AnalyzeRequest:
    inputs: list[str]
    out: Path
    settings: Settings
    fmt: str = "parquet"
    bucket: float = 1.0  # curve bucket, seconds
    content_offset: float = 0.0  # seconds between recording start and content start
    workers: int | None = None
    engine: str = "local"  # local: this machine's processes; ray: a Ray cluster (vision.ray_engine)
    address: str | None = None  # the Ray cluster (None: start one here)
