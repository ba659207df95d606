"""Expression classifiers: ONNX models run on every face of a window of frames in one batched call.

Both classifiers fill `probs` [N,7] (`vision.labels.EMOTIONS` order) and `labels`, are built once with an
explicit model path, and take a window of frames at once so the frame loop can batch across frames:
`classify(images_bgr, observations) -> observations` makes one ONNX call per model for all their faces
(crops are cut in memory and dropped). Calling a classifier, `(image_bgr, obs) -> obs`, does one frame.

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


def _session(path: Path, threads: int, device: str = "cpu"):
    from .onnx import session

    return session(path, threads, device)


def face_crops(images: list[np.ndarray], observations: list[Observation], size: int = CROP_SIZE) -> np.ndarray:
    """[N,1,size,size] float32 in [-1,1]: upright grayscale crops of every face of every frame given
    (pixels stay in memory). The affine maps of all faces are computed in one pass."""
    faces = [(img, o) for img, o in zip(images, observations) if len(o)]
    n = sum(len(o) for _, o in faces)
    crops = np.empty((n, 1, size, size), np.float32)
    if n == 0:
        return crops
    sizes = np.repeat([[o.width, o.height] for _, o in faces], [len(o) for _, o in faces], axis=0)
    maps = crop_transforms(np.concatenate([o.landmarks for _, o in faces]), sizes[:, 0], sizes[:, 1], size)
    k = 0
    for image, o in faces:
        for _ in range(len(o)):  # cut in colour, then convert only the small crop to gray
            crop = cv2.warpAffine(image, maps[k], (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            crops[k, 0] = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
            k += 1
    return crops * np.float32(2 / 255.0) - np.float32(1.0)


def _split(observations: list[Observation], *arrays: np.ndarray) -> list[Observation]:
    """Hand rows of window-wide (probs, labels) back to the observations they came from."""
    out, start = [], 0
    for obs in observations:
        end = start + len(obs)
        out.append(obs.replace(probs=arrays[0][start:end].copy(), labels=arrays[1][start:end].copy())
                   if len(obs) else obs)
        start = end
    return out


class _Classifier:
    def __call__(self, image_bgr: np.ndarray, obs: Observation) -> Observation:
        return self.classify([image_bgr], [obs])[0]


class CnnClassifier(_Classifier):
    name = "cnn"

    def __init__(self, model_path: Path, threads: int = 1, device: str = "cpu"):
        self.model_path = Path(model_path)
        self._session = _session(self.model_path, threads, device)

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """[N,1,64,64] crops -> [N,7] softmax, in one call."""
        if len(crops) == 0:
            return np.zeros((0, 7), np.float32)
        return self._session.run(None, {"input": crops})[0]

    def predict(self, image_bgr: np.ndarray, obs: Observation) -> np.ndarray:
        return self.probabilities(face_crops([image_bgr], [obs]))

    def classify(self, images: list[np.ndarray], observations: list[Observation]) -> list[Observation]:
        probs = self.probabilities(face_crops(images, observations))
        return _split(observations, probs, probs.argmax(axis=1))


def fusion_features(cnn_probs: np.ndarray, obs: Observation) -> np.ndarray:
    """[N, 52 + geometry + 7] inputs of the fusion head: blendshapes, geometry, log CNN probabilities."""
    return _features(cnn_probs, obs.blendshapes, geometry_features(obs.landmarks, obs.width, obs.height))


def _features(cnn_probs, blendshapes, geometry):
    logp = np.log(np.clip(cnn_probs, 1e-6, 1.0))
    return np.concatenate([blendshapes, geometry, logp], axis=1).astype(np.float32)


class FusionClassifier(_Classifier):
    name = "fusion"

    def __init__(self, model_path: Path, cnn: CnnClassifier, threads: int = 1, device: str = "cpu"):
        self.model_path = Path(model_path)
        self.cnn = cnn
        self._session = _session(self.model_path, threads, device)

    def classify(self, images: list[np.ndarray], observations: list[Observation]) -> list[Observation]:
        faces = [o for o in observations if len(o)]
        if not faces:
            return list(observations)
        landmarks = np.concatenate([o.landmarks for o in faces])
        size = np.repeat([[o.width, o.height] for o in faces], [len(o) for o in faces], axis=0)
        features = _features(self.cnn.probabilities(face_crops(images, observations)),
                             np.concatenate([o.blendshapes for o in faces]),
                             geometry_features(landmarks, size[:, 0], size[:, 1]))
        probs, labels = self._session.run(None, {"features": features})
        return _split(observations, probs, labels)
