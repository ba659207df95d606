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

#: Values that every present face has (an unreadable face counts as not looking: attention 0); every
#: other value is an expression reading, taken only from faces at or above the minimum quality.
PRESENT_COLUMNS: tuple[str, ...] = ("attention",)

#: Per-face reading quality, after the values in the observations table (not averaged into curves).
QUALITY_COLUMNS: tuple[str, ...] = ("face_px", "det_score", "presence", "quality")

#: Default minimum face quality (`vision.features.face_quality`) for an expression to count in curves,
#: the service's statistics and the live path.
DEFAULT_MIN_QUALITY = 0.4

#: How a fusion head names a face's expression (`--label-rule`): "balanced", the head's balanced decision (the
#: argmax of its logits, trained with equal class weights: the best macro recall, so rare expressions are called
#: more readily than their probability alone would); "probable", the argmax of its calibrated probabilities (the
#: most probable expression: in a mostly calm audience, rare expressions are called only when they are the most
#: likely); "auto", probable in the audience scene and balanced elsewhere. The probabilities, valence and curves
#: are the same under every rule: only the `emotion` column changes.
LABEL_RULES: tuple[str, ...] = ("auto", "balanced", "probable")

#: Expression classifiers `audience analyze --classifier` offers (the first is the default).
CLASSIFIERS: tuple[str, ...] = ("fusion", "fusion-v7", "fusion-v6", "fusion-v5", "fusion-v4", "fusion-v3", "fusion-v2", "fusion-v1",
                                "cnn", "faceapi")
