"""The label and column vocabulary shared by every stage and every output."""
from __future__ import annotations

#: Expression classes, in model output order, everywhere in the project.
EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")

#: Blendshape-derived metrics, each 0-1.
METRICS: tuple[str, ...] = ("smile", "brow_raise", "brow_furrow", "eye_widen", "mouth_open")

#: Per-face numbers after the box, in output column order.
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{e}" for e in EMOTIONS)
#: Values each viewer is also read against their own baseline (vision.reactions): `<value>_delta`.
DELTA_BASES: tuple[str, ...] = PROB_COLUMNS + METRICS + ("valence",)
DELTA_COLUMNS: tuple[str, ...] = tuple(f"{c}_delta" for c in DELTA_BASES)
VALUE_COLUMNS: tuple[str, ...] = (PROB_COLUMNS + METRICS + ("valence", "yaw", "pitch", "roll", "attention")
                                  + DELTA_COLUMNS)
