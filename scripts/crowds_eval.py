"""Scoring face boxes against WIDER FACE annotations (`../shared/data/crowds/wider_face_bbx_gt.txt`).

The annotation file: a file name, the number of faces N, then N lines `x y w h blur expression illumination
invalid occlusion pose` (pixels, top-left corner and size). WIDER's flags: blur 0 clear / 1 normal / 2 heavy;
occlusion 0 none / 1 partial / 2 heavy; pose 0 typical / 1 atypical; invalid 1 = do not count. (A file with
no face has N = 0 followed by one all-zero line, which is skipped.)

- *valid*: invalid == 0 and 20 <= box height <= 150 px (the faces of a wide shot of an audience);
- *readable*: valid, occlusion 0, pose 0 (typical), blur < 2;
- a face is *found* when a detection overlaps it with IoU >= `iou` (one detection finds one face: pairs are
  taken greedily by IoU over every annotated box, valid or not, so a detection on a tiny or invalid face
  does not count for a valid neighbour);
- a *false positive* is a detection that overlaps no annotated box at all (valid or not) with IoU >= `iou`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BANDS = ((20, 31), (32, 47), (48, 79), (80, 150))  # face height in pixels, inclusive
MIN_PX, MAX_PX = BANDS[0][0], BANDS[-1][1]


@dataclass(frozen=True)
class Annotation:
    """The faces of one image: boxes [N,4] x1,y1,x2,y2 pixels and WIDER's per-face flags [N]."""
    boxes: np.ndarray
    blur: np.ndarray
    invalid: np.ndarray
    occlusion: np.ndarray
    pose: np.ndarray

    @property
    def heights(self) -> np.ndarray:
        return self.boxes[:, 3] - self.boxes[:, 1]

    @property
    def valid(self) -> np.ndarray:
        return (self.invalid == 0) & (self.heights >= MIN_PX) & (self.heights <= MAX_PX)

    @property
    def readable(self) -> np.ndarray:
        return self.valid & (self.occlusion == 0) & (self.pose == 0) & (self.blur < 2)


def annotation(rows) -> Annotation:
    """Rows of `x y w h blur expression illumination invalid occlusion pose` -> Annotation."""
    a = np.asarray(rows, np.float64).reshape(-1, 10)
    boxes = np.stack([a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]], axis=1)
    i = a[:, 4:].astype(np.int64)
    return Annotation(boxes, blur=i[:, 0], invalid=i[:, 3], occlusion=i[:, 4], pose=i[:, 5])


def read_annotations(path: str | Path) -> dict[str, Annotation]:
    """The annotation file -> {file name: Annotation}, in file order."""
    lines = iter(Path(path).read_text().split("\n"))
    out: dict[str, Annotation] = {}
    for name in lines:
        name = name.strip()
        if not name:
            continue
        n = int(next(lines))
        rows = [next(lines).split() for _ in range(max(n, 1))]  # N = 0 is followed by one dummy line
        out[name] = annotation([r[:10] for r in rows[:n]])
    return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] intersection over union of x1,y1,x2,y2 boxes (continuous coordinates)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match(truth: np.ndarray, detections: np.ndarray, iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(found [len(truth)] bool, false_positive [len(detections)] bool), as the module docstring says."""
    m = iou_matrix(truth, detections)
    found = np.zeros(len(truth), bool)
    used = np.zeros(len(detections), bool)
    gi, di = np.nonzero(m >= iou)
    for k in np.argsort(-m[gi, di], kind="stable"):
        g, d = gi[k], di[k]
        if not found[g] and not used[d]:
            found[g] = used[d] = True
    false_positive = ~(m >= iou).any(axis=0) if len(truth) else np.ones(len(detections), bool)
    return found, false_positive


def band_index(heights: np.ndarray) -> np.ndarray:
    """Band of each face height (index into BANDS), -1 outside 20-150 px."""
    out = np.full(len(heights), -1)
    for k, (lo, hi) in enumerate(BANDS):
        out[(heights >= lo) & (heights < hi + 1)] = k
    return out


@dataclass
class Score:
    """Counts over images; `add` one image at a time, `row()` for the table."""
    iou: float = 0.3
    images: int = 0
    false_positives: int = 0
    seconds: float = 0.0
    valid: np.ndarray = field(default_factory=lambda: np.zeros((2, len(BANDS)), np.int64))  # [found, total]
    readable: np.ndarray = field(default_factory=lambda: np.zeros((2, len(BANDS)), np.int64))

    def add(self, truth: Annotation, detections: np.ndarray, seconds: float = 0.0) -> None:
        found, fp = match(truth.boxes, np.asarray(detections, np.float64).reshape(-1, 4), self.iou)
        bands = band_index(truth.heights)
        for counts, mask in ((self.valid, truth.valid), (self.readable, truth.readable)):
            for k in range(len(BANDS)):
                sel = mask & (bands == k)
                counts[0, k] += int(found[sel].sum())
                counts[1, k] += int(sel.sum())
        self.images += 1
        self.false_positives += int(fp.sum())
        self.seconds += seconds

    @staticmethod
    def _recall(counts: np.ndarray, bands=slice(None)) -> float:
        total = counts[1, bands].sum()
        return float(counts[0, bands].sum() / total) if total else float("nan")

    def row(self) -> dict:
        n = max(self.images, 1)
        out = {"readable": self._recall(self.readable), "valid": self._recall(self.valid)}
        for k, (lo, hi) in enumerate(BANDS):
            out[f"valid {lo}-{hi}"] = self._recall(self.valid, slice(k, k + 1))
        for k, (lo, hi) in enumerate(BANDS):
            out[f"read {lo}-{hi}"] = self._recall(self.readable, slice(k, k + 1))
        out["fp/img"] = self.false_positives / n
        out["ms/img"] = 1000 * self.seconds / n
        return out
