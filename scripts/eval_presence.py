"""How well FaceMesh's presence score separates MTCNN's correct detections from its false ones.

    python scripts/eval_presence.py ../shared/data/crowds [--min-face 20] [--limit N] [--refine]

On each photo of the WIDER FACE subset MTCNN (vision/detector.py) finds faces; every detection is read
by `vision.facemesh.FaceMesh` on its box. A detection is correct when it overlaps a valid annotated face
20-150 px tall with IoU >= 0.3, false when it overlaps no annotated face at all (IoU < 0.3 with every box,
valid or not; detections of faces outside 20-150 px or of boxes marked invalid count as neither).
Prints, for several thresholds t, the share of correct and of false detections with presence > t, and
how the ROI MediaPipe would use (from the landmarks) sits around the detector's box (to set
`FaceMeshOptions.box_scale` / `box_shift`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vision.detector import MtcnnDetector, MtcnnOptions  # noqa: E402
from vision.facemesh import FaceMesh, FaceMeshOptions, regions_from_landmarks  # noqa: E402
from vision.registry import model_file  # noqa: E402

THRESHOLDS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def read_wider(path: Path) -> dict[str, np.ndarray]:
    """WIDER FACE ground truth -> {file name: [N,5] x1, y1, x2, y2, invalid}."""
    lines = path.read_text().split("\n")
    out, i = {}, 0
    while i < len(lines) and lines[i].strip():
        name, n = lines[i].strip(), int(lines[i + 1])
        rows = [list(map(int, lines[i + 2 + k].split()[:10])) for k in range(max(n, 1))][:n]
        a = np.asarray(rows, np.float64).reshape(-1, 10)
        out[Path(name).name] = np.stack([a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], a[:, 7]], 1)
        i += 2 + max(n, 1)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N,4] x [M,4] -> [N,M] intersection over union."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def label_detections(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per detection: 1 correct (IoU >= 0.3 with a valid face 20-150 px tall), 0 false (no face), -1 neither."""
    if len(boxes) == 0:
        return np.zeros(0, int)
    if len(truth) == 0:
        return np.zeros(len(boxes), int)
    m = iou(boxes, truth[:, :4])
    h = truth[:, 3] - truth[:, 1]
    valid = (truth[:, 4] == 0) & (h >= 20) & (h <= 150)
    out = np.full(len(boxes), -1)
    out[(m[:, valid] >= 0.3).any(axis=1) if valid.any() else np.zeros(len(boxes), bool)] = 1
    out[(m < 0.3).all(axis=1)] = 0
    return out


def mediapipe_keeps(landmarker, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per box: does MediaPipe's landmarker find a face on the 1.8x, 256 px crop (vision/audience.py today)."""
    from vision.audience import square_regions
    from vision.capture import Frame

    out = np.zeros(len(boxes), bool)
    for k, (x0, y0, side) in enumerate(square_regions(boxes, 1.8, image.shape[1], image.shape[0])):
        s = 256 / side
        crop = cv2.warpAffine(image, np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32), (256, 256))
        out[k] = len(landmarker.landmark(Frame("", 0, 0.0, crop))[0]) > 0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("crowds", type=Path)
    ap.add_argument("--min-face", type=int, default=20)
    ap.add_argument("--limit", type=int, default=0, help="first N photos only")
    ap.add_argument("--refine", action="store_true", help="FaceMesh second pass on MediaPipe's ROI")
    ap.add_argument("--compare-mediapipe", action="store_true",
                    help="also: does MediaPipe's landmarker (image mode, on today's 1.8x crop) find the face")
    ap.add_argument("--detector", default="mtcnn", help="mtcnn (min face --min-face), or one of "
                    "vision.detection.DETECTORS as the audience scene builds it")
    ap.add_argument("--box-scale", type=float, default=FaceMeshOptions.box_scale)
    ap.add_argument("--box-shift", type=float, default=FaceMeshOptions.box_shift)
    args = ap.parse_args(argv)
    truth = read_wider(args.crowds / "wider_face_bbx_gt.txt")
    names = sorted(truth)[: args.limit or None]
    mtcnn = tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet"))
    if args.detector == "mtcnn":
        det = MtcnnDetector(MtcnnOptions(*mtcnn, min_face=args.min_face))
    else:
        from vision.detection import build_detector

        det = build_detector(args.detector, centerface=model_file("centerface").path, mtcnn=mtcnn)
    opts = FaceMeshOptions(model_file("face_landmarks").path, model_file("face_blendshapes").path,
                           box_scale=args.box_scale, box_shift=args.box_shift, refine=args.refine)
    labels, presence, fit, kept = [], [], [], []
    t0 = time.perf_counter()
    landmarker = None
    if args.compare_mediapipe:
        from vision.landmarker import Landmarker, LandmarkerOptions

        landmarker = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image", max_faces=1,
                                                  image_padding=0.0))
    with FaceMesh(opts) as mesh:
        for name in names:
            image = cv2.imread(str(args.crowds / "images" / name))
            boxes, _ = det.detect(image)
            r = mesh.read(image, boxes)
            labels.append(label_detections(boxes, truth[name]))
            presence.append(r.presence)
            if landmarker is not None:
                kept.append(mediapipe_keeps(landmarker, image, boxes))
            if len(r):  # where MediaPipe's own ROI would sit, relative to the detector's box
                roi = regions_from_landmarks(r.landmarks, image.shape[1], image.shape[0])
                side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
                fit.append(np.stack([roi[:, 2] / side, (roi[:, 1] - (boxes[:, 1] + boxes[:, 3]) / 2)
                                     / (boxes[:, 3] - boxes[:, 1]), r.presence], 1))
    if landmarker is not None:
        landmarker.close()
    labels, presence = np.concatenate(labels), np.concatenate(presence)
    good, bad = presence[labels == 1], presence[labels == 0]
    print(f"{len(names)} photos, {args.detector} min_face {args.min_face}, refine {args.refine}, box_scale {args.box_scale}, "
          f"box_shift {args.box_shift}: {len(good)} correct and {len(bad)} false detections "
          f"({len(bad) / len(names):.2f} per photo), {time.perf_counter() - t0:.0f} s")
    print("   t   correct>t  false>t  false/photo>t")
    for t in THRESHOLDS:
        print(f"{t:5.2f}   {np.mean(good > t):8.3f} {np.mean(bad > t):8.3f}  {np.sum(bad > t) / len(names):8.2f}")
    if kept:
        kept = np.concatenate(kept)
        print(f"MediaPipe's landmarker on the 1.8x crop (today's audience scene) finds a face on "
              f"{np.mean(kept[labels == 1]):.3f} of the correct and {np.mean(kept[labels == 0]):.3f} of the false detections")
    if fit:
        f = np.concatenate(fit)
        f = f[f[:, 2] > 0.9]
        print(f"MediaPipe's ROI on read faces (presence > 0.9, n={len(f)}): side / box side median "
              f"{np.median(f[:, 0]):.2f} (IQR {np.percentile(f[:, 0], 25):.2f}-{np.percentile(f[:, 0], 75):.2f}), "
              f"centre below the box centre by {np.median(f[:, 1]):+.3f} box heights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
