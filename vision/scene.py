"""The scene of a run: "single" (faces near the camera: MediaPipe's own detector) or "audience" (a wide shot of
many small faces: the audience front end), chosen once per run from the first readable frame when asked "auto"."""
from __future__ import annotations

import dataclasses

import numpy as np

from .capture import SourceSpec, open_source
from .detector import MtcnnDetector, MtcnnOptions
from .errors import AudienceError
from .pipeline import model_files
from .settings import Settings


def resolve_scene(specs: list[SourceSpec], settings: Settings, detector=None) -> tuple[Settings, str]:
    """Settings with scene "auto" made concrete from the first readable frame of the inputs (one decision
    for the whole run, so segments and cameras of one screening agree), and the reason. `detector`: an
    MtcnnDetector to reuse (a batch decides for many recordings)."""

    if settings.scene != "auto":
        return settings, "chosen by setting"
    if detector is None:
        models = model_files(settings)
        detector = MtcnnDetector(MtcnnOptions(*(models[f"mtcnn_{n}"].path for n in ("pnet", "rnet", "onet")),
                                              device=settings.device))
    for spec in specs:
        try:
            with open_source(spec) as source:
                frame = next(iter(source), None)
        except AudienceError:
            continue
        if frame is not None:
            scene, reason = choose_scene(frame.image, detector)
            return dataclasses.replace(settings, scene=scene), f"auto: {reason}"
    return dataclasses.replace(settings, scene="single"), "auto: no readable frame to decide from"


def choose_scene(image_bgr: np.ndarray, detector: MtcnnDetector, min_faces: int = 3,
                 small_face: float = 0.12) -> tuple[str, str]:
    """'audience' when a frame shows at least `min_faces` faces or any face smaller than `small_face` of
    the frame height (MediaPipe's own detector misses those), else 'single'. Returns (scene, reason)."""
    boxes, _ = detector.detect(image_bgr)
    if len(boxes) == 0:
        return "single", "no face on the first frame"
    smallest = float((boxes[:, 3] - boxes[:, 1]).min() / image_bgr.shape[0])
    reason = f"{len(boxes)} face(s) on the first frame, smallest {100 * smallest:.0f}% of its height"
    return ("audience" if len(boxes) >= min_faces or smallest < small_face else "single"), reason
