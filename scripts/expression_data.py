"""Shared by train_fusion_head.py and eval_expressions.py: read a labelled photo folder, run MediaPipe
(image mode, black border) and the CNN on every photo, and keep the numbers the fusion head needs.

A labelled folder holds `labels.csv` (image, emotion) and the photos under `images/` (or beside the CSV).
Labels outside the project's seven (e.g. contempt) are left out. The subject of a photo is its file name
without the trailing number (`Tim_Henman_0007.jpg` -> `Tim_Henman`), used for subject-disjoint splits.
"""
from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vision.capture import Frame, read_image  # noqa: E402
from vision.classifier import (CnnClassifier, FaceApiClassifier, face_crops, face_crops_rgb,  # noqa: E402
                               fusion_features, sharpness)
from vision.features import FACE_OVAL, geometry_features  # noqa: E402
from vision.labels import EMOTIONS  # noqa: E402
from vision.landmarker import Landmarker, LandmarkerOptions  # noqa: E402
from vision.registry import model_file  # noqa: E402
from vision.quiet import native_stderr_to_devnull  # noqa: E402

#: The five classes with enough photos for a stable figure (fear has 11 photos, disgust is mostly movie crops).
FIVE = ("anger", "happiness", "sadness", "surprise", "neutral")
ALIASES = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise"}


@dataclass
class LabelledSet:
    names: list[str]
    labels: np.ndarray  # [N] class index into EMOTIONS
    subjects: list[str]
    kinds: list[str]  # "web" (LFW-style 250/350 px portraits) or "movie" (small movie-still crops)
    found: np.ndarray  # [N] bool: MediaPipe found a face
    features: np.ndarray  # [N, F] fusion-head inputs (zeros where no face)
    cnn_probs: np.ndarray  # [N, 7]


def subject_of(name: str) -> str:
    return re.sub(r"_\d+$", "", Path(name).stem)


def kind_of(name: str) -> str:
    return "web" if re.search(r"_\d{4}$", Path(name).stem) else "movie"


def read_labels(folder: Path) -> list[tuple[Path, int]]:
    folder = Path(folder)
    images = folder / "images" if (folder / "images").is_dir() else folder
    rows = []
    with open(folder / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            label = ALIASES.get(row["emotion"].strip().lower(), row["emotion"].strip().lower())
            if label in EMOTIONS:
                rows.append((images / row["image"], EMOTIONS.index(label)))
    return rows


def labels_and_subjects(rows: list[tuple[Path, int]]) -> tuple[np.ndarray, list[str]]:
    """`read_labels`' rows -> each photo's label and its person (the groups of subject-disjoint folds)."""
    return np.array([label for _, label in rows]), [subject_of(p.name) for p, _ in rows]


def extract(folder: Path, limit: int | None = None) -> LabelledSet:
    rows = read_labels(folder)[:limit]
    with native_stderr_to_devnull():
        cnn = CnnClassifier(model_file("cnn").path)
        lm = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image", max_faces=1))
        feats, probs, found = [], [], []
        try:
            for path, _ in rows:
                image = read_image(str(path))
                obs = lm.detect(Frame(path.name, 0, 0.0, image)) if image is not None else None
                if obs is None or len(obs) == 0:
                    found.append(False)
                    feats.append(None)
                    probs.append(np.full(7, np.nan, np.float32))
                    continue
                p = cnn.predict(image, obs)
                found.append(True)
                feats.append(fusion_features(p, obs)[0])
                probs.append(p[0])
        finally:
            lm.close()
    width = next(len(f) for f in feats if f is not None)
    features = np.stack([f if f is not None else np.zeros(width, np.float32) for f in feats])
    names = [p.name for p, _ in rows]
    return LabelledSet(names, np.array([y for _, y in rows]), [subject_of(n) for n in names],
                       [kind_of(n) for n in names], np.array(found), features, np.stack(probs))


# ---------------------------------------------------------------- photos degraded like venue cameras

#: Conditions every photo is read under: the photo itself, its face at 48 and 32 px (JPEG 80), and
#: VENUE_COPIES random venue-camera versions (degrade.venue, seeded by the photo's index and the copy).
EVAL_SIZES = {"full": None, "48px": 48, "32px": 32}
#: Where eval_expressions.py, train_fusion_head.py and the golden test keep the readings (keyed on photos,
#: models and code; a file of another key is recomputed and replaced).
DEFAULT_CACHE = Path("/tmp/audience_expression_conditions_v5.npz")
VENUE_COPIES = 2


def conditions() -> list[str]:
    return list(EVAL_SIZES) + [f"venue{k}" for k in range(VENUE_COPIES)]


@dataclass
class Readings:
    """Everything the heads need for one photo set under one condition (zeros where no face was found)."""
    found: np.ndarray  # [N] bool
    blendshapes: np.ndarray  # [N, 52]
    geometry: np.ndarray  # [N, 104]
    fer: np.ndarray  # [N, 7] fer CNN probabilities
    faceapi: np.ndarray  # [N, 7] face-api probabilities
    faceapi_features: np.ndarray  # [N, 256]
    sharpness: np.ndarray  # [N]
    fer_flip: np.ndarray  # [N, 7] fer CNN probabilities on the mirrored crop (test-time flip)
    faceapi_flip: np.ndarray  # [N, 7] face-api probabilities on the mirrored crop
    faceapi_features_flip: np.ndarray  # [N, 256]
    fer_features: np.ndarray  # [N, 128] fer's penultimate features (its last block, pooled: CnnClassifier.outputs)
    fer_features_flip: np.ndarray  # [N, 128] the same on the mirrored crop

    @classmethod
    def zeros(cls, n: int) -> "Readings":
        widths = {"blendshapes": 52, "geometry": 104, "fer": 7, "faceapi": 7, "faceapi_features": 256,
                  "fer_flip": 7, "faceapi_flip": 7, "faceapi_features_flip": 256, "fer_features": 128,
                  "fer_features_flip": 128}
        return cls(np.zeros(n, bool), **{f: np.zeros((n, widths[f]) if f in widths else n, np.float32)
                                         for f in list(cls.__dataclass_fields__)[1:]})

    def v1_features(self) -> np.ndarray:
        from vision.classifier import _features
        return _features(np.where(self.found[:, None], self.fer, 1.0), self.blendshapes, self.geometry)

    def v2_features(self, flip: bool = False, fer_flip: bool | None = None, with_fer_features: bool = False
                    ) -> np.ndarray:
        """Inputs of the v2-form heads; `flip`: each CNN's outputs averaged over the crop and its mirror
        image (the v3 head, `vision.classifier.cnn_outputs`); `fer_flip` (default: `flip`): fer's alone (the cheap
        CNN); `with_fer_features`: fer's 128 penultimate features after them (the v5 form)."""
        from vision.classifier import fusion2_features
        fer_flip = flip if fer_flip is None else fer_flip
        ok = self.found[:, None]
        fer, fer_f = self.fer, self.fer_features
        fa, fa_f = self.faceapi, self.faceapi_features
        if fer_flip:
            fer, fer_f = (fer + self.fer_flip) / 2, (fer_f + self.fer_features_flip) / 2
        if flip:
            fa, fa_f = (fa + self.faceapi_flip) / 2, (fa_f + self.faceapi_features_flip) / 2
        x = fusion2_features(np.where(ok, fer, 1.0), np.where(ok, fa, 1.0), fa_f, self.sharpness,
                             self.blendshapes, self.geometry)
        return np.concatenate([x, fer_f], axis=1).astype(np.float32) if with_fer_features else x

    def v3_features(self) -> np.ndarray:
        return self.v2_features(flip=True)

    def v5_features(self, flip: bool = False, fer_flip: bool | None = None) -> np.ndarray:
        """The v2-form inputs (`v2_features`' `flip`, `fer_flip`) then fer's 128 penultimate features."""
        return self.v2_features(flip, fer_flip, with_fer_features=True)


def _face_box(obs, degrade):
    pts = obs.landmarks[0, list(FACE_OVAL), :2] * [obs.width, obs.height]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    eyes = obs.landmarks[0, [33, 263], 1].mean() * obs.height
    mouth = obs.landmarks[0, [13, 14], 1].mean() * obs.height
    return degrade.FaceBox(float(x0), float(y0), float(x1 - x0), float(y1 - y0), float(eyes), float(mouth))


_MODELS = {}


def _conditioned(index: int, path: str, lm):
    """(condition, image, observation or None where no face is found) for the photo under every condition:
    degraded around the face box the full-size photo gives (the same copies for every reader)."""
    import degrade

    image = read_image(path)
    box = None
    for cond in conditions():
        if image is None:
            yield cond, None, None
            continue
        if cond == "full":
            img = image
        else:
            b = box or degrade.FaceBox.default(image.shape[1], image.shape[0])
            img = (degrade.fixed_size(image, b, EVAL_SIZES[cond]) if cond in EVAL_SIZES else
                   degrade.venue(image, b, np.random.default_rng([index, int(cond[5:])])))
        with native_stderr_to_devnull():
            obs = lm.detect(Frame(Path(path).name, 0, 0.0, img))
        if len(obs) == 0:
            yield cond, img, None
            continue
        if cond == "full":
            box = _face_box(obs, degrade)
        yield cond, img, obs


def _read_chunk(chunk: list[tuple[int, str]]) -> list[tuple[int, str, tuple | None]]:
    """Worker: read every photo of the chunk under every condition. Models are built once per process."""
    if not _MODELS:
        with native_stderr_to_devnull():
            _MODELS["cnn"] = CnnClassifier(model_file("cnn").path, features=True)
            _MODELS["faceapi"] = FaceApiClassifier(model_file("faceapi").path)
            _MODELS["lm"] = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image",
                                                         max_faces=1))
    cnn, fa, lm = _MODELS["cnn"], _MODELS["faceapi"], _MODELS["lm"]
    out = []
    for index, path in chunk:
        for cond, img, obs in _conditioned(index, path, lm):
            if obs is None:
                out.append((index, cond, None))
                continue
            crops, rgb = face_crops([img], [obs]), face_crops_rgb([img], [obs])
            # the crop and its mirror image in one call per CNN
            fer_p, fer_f = cnn.outputs(np.ascontiguousarray(np.concatenate([crops, crops[..., ::-1]])))
            fa_p, fa_f = fa.outputs(np.ascontiguousarray(np.concatenate([rgb, rgb[..., ::-1]])))
            out.append((index, cond, (obs.blendshapes[0], geometry_features(obs.landmarks, obs.width, obs.height)[0],
                                      fer_p[0], fa_p[0], fa_f[0], sharpness(crops)[0], fer_p[1], fa_p[1], fa_f[1],
                                      fer_f[0], fer_f[1])))
    return out


def _per_photo(chunk_fn, rows: list, workers: int) -> list:
    """`chunk_fn` over every photo of `rows` ([(path, label)]), in chunks of (index, path), on `workers`
    spawned processes (1: in this one); its results, concatenated in the order the chunks finish."""
    items = [(i, str(p)) for i, (p, _) in enumerate(rows)]
    chunks = [items[k::workers * 8] for k in range(workers * 8)]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            return [r for part in pool.imap_unordered(chunk_fn, chunks) for r in part]
    return [r for c in chunks for r in chunk_fn(c)]


def read_conditions(folder: Path, cache: Path, workers: int = 2, limit: int | None = None) -> dict[str, Readings]:
    """Readings of every photo under every condition, cached in `cache` (.npz) once computed."""
    rows = read_labels(folder)[:limit]
    cache = Path(cache)
    key = _cache_key(rows) + ":" + ",".join(Readings.__dataclass_fields__)
    if cache.is_file():
        z = np.load(cache)
        if "key" in z and str(z["key"]) == key:
            return {c: Readings(*(z[f"{c}/{f}"] for f in Readings.__dataclass_fields__)) for c in conditions()}
    results = _per_photo(_read_chunk, rows, workers)
    n = len(rows)
    data = {c: Readings.zeros(n) for c in conditions()}
    for index, cond, values in results:
        if values is None:
            continue
        r = data[cond]
        r.found[index] = True
        for name, v in zip(list(Readings.__dataclass_fields__)[1:], values):
            getattr(r, name)[index] = v
    arrays = {f"{c}/{f}": getattr(r, f) for c, r in data.items() for f in Readings.__dataclass_fields__}
    np.savez_compressed(cache, key=key, **arrays)
    return data


#: The readings' fields as they were before fer's penultimate features: part of every derived cache's key (the
#: tuned face-api's out-of-fold file, the mesh), which do not depend on the readings added since.
_KEY_FIELDS = ("found", "blendshapes", "geometry", "fer", "faceapi", "faceapi_features", "sharpness", "fer_flip",
               "faceapi_flip", "faceapi_features_flip")


def _cache_key(rows) -> str:
    """What the cached photos' numbers depend on: the photos and labels, the models, the degradations' code
    (read_conditions adds the readings' own fields)."""
    import hashlib

    import degrade

    h = hashlib.sha256()
    for path, label in rows:
        h.update(f"{path.name}:{label}:{path.stat().st_size if path.exists() else -1};".encode())
    for name in ("cnn", "faceapi", "face_landmarker"):
        h.update(model_file(name).sha256.encode())
    h.update(Path(degrade.__file__).read_bytes())
    h.update(",".join(conditions()).encode())
    h.update(",".join(_KEY_FIELDS).encode())
    return h.hexdigest()


def recall_report(truth: np.ndarray, pred: np.ndarray) -> dict:
    """pred -1 = no face (counted wrong). Macro recall over the classes present in truth (and over FIVE)."""
    per = {}
    for k, e in enumerate(EMOTIONS):
        mask = truth == k
        if mask.any():
            per[e] = float((pred[mask] == k).mean())
    five = [per[e] for e in FIVE if e in per]
    return {"n": int(len(truth)), "accuracy": float((pred == truth).mean()) if len(truth) else float("nan"),
            "macro_recall": float(np.mean(list(per.values()))) if per else float("nan"),
            "macro_recall_5": float(np.mean(five)) if five else float("nan"),
            "no_face_rate": float((pred < 0).mean()) if len(truth) else float("nan"),
            "per_class_recall": per}


# ---------------------------------------------------------------- the whole landmark mesh (head v4)

DEFAULT_MESH_CACHE = Path("/tmp/audience_expression_mesh.npz")


def mesh_geometry(landmarks: np.ndarray, width, height) -> np.ndarray:
    """[N,478,3] normalised landmarks -> [N, 478*3]: every mesh point in the upright face frame of
    `vision.features.geometry_features` (origin between the eyes, x along the eye line, unit = inter-ocular
    distance; z, MediaPipe's relative depth in frame-width units, centred and on the same scale)."""
    from vision.features import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

    lm = np.asarray(landmarks, np.float64)
    scale = np.reshape([width, height], (1, 1, 2)).astype(np.float64)
    pts, z = lm[:, :, :2] * scale, lm[:, :, 2] * width
    right, left = pts[:, RIGHT_EYE_OUTER], pts[:, LEFT_EYE_OUTER]
    d = left - right
    centre, angle = (left + right) / 2, np.arctan2(d[:, 1], d[:, 0])
    iod = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
    c, s = np.cos(-angle)[:, None], np.sin(-angle)[:, None]
    sel = pts - centre[:, None, :]
    x = (c * sel[:, :, 0] - s * sel[:, :, 1]) / iod
    y = (s * sel[:, :, 0] + c * sel[:, :, 1]) / iod
    z = (z - z.mean(axis=1, keepdims=True)) / iod
    return np.stack([x, y, z], axis=2).reshape(len(lm), -1).astype(np.float32)


def _mesh_chunk(chunk: list[tuple[int, str]]) -> list[tuple[int, str, np.ndarray | None]]:
    """Worker: the normalised 478-point mesh (`mesh_geometry`) of every photo of the chunk
    under every condition, the photos degraded exactly as in `_read_chunk`."""
    if "lm" not in _MODELS:
        with native_stderr_to_devnull():
            _MODELS["lm"] = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image",
                                                         max_faces=1))
    lm, out = _MODELS["lm"], []
    for index, path in chunk:
        for cond, img, obs in _conditioned(index, path, lm):
            if obs is None:
                out.append((index, cond, None))
                continue
            out.append((index, cond, mesh_geometry(obs.landmarks, obs.width, obs.height)[0]))
    return out


def read_mesh(folder: Path, cache: Path = DEFAULT_MESH_CACHE, workers: int = 2) -> dict[str, np.ndarray]:
    """condition -> [N, 478*3] normalised mesh of every photo (zeros where no face), cached in `cache`."""
    rows = read_labels(folder)
    cache, key = Path(cache), _cache_key(rows) + ":mesh"
    if cache.is_file():
        z = np.load(cache)
        if "key" in z and str(z["key"]) == key:
            return {c: z[c] for c in conditions()}
    results = _per_photo(_mesh_chunk, rows, workers)
    data = {c: np.zeros((len(rows), 478 * 3), np.float32) for c in conditions()}
    for index, cond, values in results:
        if values is not None:
            data[cond][index] = values
    np.savez_compressed(cache, key=key, **data)
    return data
