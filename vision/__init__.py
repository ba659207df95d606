"""Audience reaction analysis, vision core: capture -> MediaPipe landmarks -> ONNX expressions ->
tracking -> one immutable `Observation` per analysed frame -> sinks.

Importing this package has no side effects; models are built only when a stage is created.
"""
from .errors import AudienceError, InputNotFound, ModelError, NoInputs, UnsupportedInput
from .labels import EMOTIONS, METRICS, VALUE_COLUMNS
from .observation import Observation

__all__ = ["AudienceError", "InputNotFound", "ModelError", "NoInputs", "UnsupportedInput",
           "EMOTIONS", "METRICS", "VALUE_COLUMNS", "Observation"]
