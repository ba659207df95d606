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
from vision.classifier import CnnClassifier, fusion_features  # noqa: E402
from vision.labels import EMOTIONS  # noqa: E402
from vision.landmarker import Landmarker, LandmarkerOptions  # noqa: E402
from vision.models import model_file  # noqa: E402
from vision.quiet import native_stderr_to_devnull  # noqa: E402

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


def recall_report(truth: np.ndarray, pred: np.ndarray) -> dict:
    """pred -1 = no face (counted wrong). Macro recall over the classes present in truth."""
    per = {}
    for k, e in enumerate(EMOTIONS):
        mask = truth == k
        if mask.any():
            per[e] = float((pred[mask] == k).mean())
    return {"n": int(len(truth)), "accuracy": float((pred == truth).mean()) if len(truth) else float("nan"),
            "macro_recall": float(np.mean(list(per.values()))) if per else float("nan"),
            "no_face_rate": float((pred < 0).mean()) if len(truth) else float("nan"),
            "per_class_recall": per}
