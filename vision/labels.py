"""The label and column vocabulary shared by every stage and every output."""
from __future__ import annotations

#: Expression classes, in model output order, everywhere in the project.
EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")

#: Blendshape-derived metrics, each 0-1.
METRICS: tuple[str, ...] = ("smile", "brow_raise", "brow_furrow", "eye_widen", "mouth_open")

#: Per-face numbers after the box, in output column order.
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{e}" for e in EMOTIONS)
VALUE_COLUMNS: tuple[str, ...] = PROB_COLUMNS + METRICS + ("valence", "yaw", "pitch", "roll", "attention")

#: Expression classifiers `audience analyze --classifier` offers (the first is the default).
CLASSIFIERS: tuple[str, ...] = ("fusion", "fusion-v1", "cnn", "faceapi")
