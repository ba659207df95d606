"""Expression classifiers: ONNX models run on every face of a frame in one batched call.

Both classifiers are callables `(image_bgr, observation) -> observation` that fill `probs` [N,7]
(`vision.labels.EMOTIONS` order), and both are built once with an explicit model path:

- `CnnClassifier`: the fer mini-Xception (FER2013) on an upright 64x64 grayscale crop.
- `FusionClassifier`: a calibrated linear head over MediaPipe's 52 blendshapes, normalised landmark
  geometry and the CNN's log-probabilities, trained on labelled photos (see models/fusion_head.md).
  Its `probs` are calibrated (means over faces estimate shares); its `labels` are the balanced decision
  (best macro recall), so a face's label is not always the argmax of its calibrated probabilities.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .features import crop_transforms, geometry_features
from .observation import Observation

CROP_SIZE = 64


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def face_crops(image_bgr: np.ndarray, obs: Observation, size: int = CROP_SIZE) -> np.ndarray:
    """[N,1,size,size] float32 in [-1,1]: upright grayscale crops of every face (pixels stay in memory)."""
    if len(obs) == 0:
        return np.zeros((0, 1, size, size), np.float32)
    maps = crop_transforms(obs.landmarks, obs.width, obs.height, size)
    crops = np.empty((len(obs), 1, size, size), np.float32)
    for i, m in enumerate(maps):  # cut in colour, then convert only the small crop to gray
        crop = cv2.warpAffine(image_bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crops[i, 0] = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return crops * np.float32(2 / 255.0) - np.float32(1.0)


class CnnClassifier:
    name = "cnn"

    def __init__(self, model_path: Path, threads: int = 1):
        self.model_path = Path(model_path)
        self._session = _session(self.model_path, threads)

    def predict(self, image_bgr: np.ndarray, obs: Observation) -> np.ndarray:
        if len(obs) == 0:
            return np.zeros((0, 7), np.float32)
        return self._session.run(None, {"input": face_crops(image_bgr, obs)})[0]

    def __call__(self, image_bgr: np.ndarray, obs: Observation) -> Observation:
        probs = self.predict(image_bgr, obs)
        return obs.replace(probs=probs, labels=probs.argmax(axis=1))


def fusion_features(cnn_probs: np.ndarray, obs: Observation) -> np.ndarray:
    """[N, 52 + geometry + 7] inputs of the fusion head: blendshapes, geometry, log CNN probabilities."""
    geometry = geometry_features(obs.landmarks, obs.width, obs.height)
    logp = np.log(np.clip(cnn_probs, 1e-6, 1.0))
    return np.concatenate([obs.blendshapes, geometry, logp], axis=1).astype(np.float32)


class FusionClassifier:
    name = "fusion"

    def __init__(self, model_path: Path, cnn: CnnClassifier, threads: int = 1):
        self.model_path = Path(model_path)
        self.cnn = cnn
        self._session = _session(self.model_path, threads)

    def __call__(self, image_bgr: np.ndarray, obs: Observation) -> Observation:
        if len(obs) == 0:
            return obs
        features = fusion_features(self.cnn.predict(image_bgr, obs), obs)
        probs, labels = self._session.run(None, {"features": features})
        return obs.replace(probs=probs, labels=labels)
