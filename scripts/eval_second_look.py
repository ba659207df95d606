"""When the audience front end's second look pays: every refused first reading, its features and what a second
reading on its landmarks' region made of it.

    python scripts/eval_second_look.py ../shared/data/crowds [--limit N] [--video FILE] [--csv FILE]

On each crowd photo the shipped detector (`centerface+mtcnn`) finds faces; FaceMesh reads each box (the first
look). Every reading the presence gate refuses (0 < presence < gate) is read again on the region its landmarks
give (`regions_from_landmarks`, the second look as `vision.audience` does it). Logged per refused face: the first
look's presence, the detector score (common scale), the face's height in pixels, where the first look's landmarks
sit in the crop (their box centre's offset from the crop centre and their box's larger side, both as a share of
the crop side) and the second look's presence; and, on the photos, what the detection is against WIDER FACE
(a valid face 20-150 px, a readable one, or a false detection overlapping no annotated face, IoU >= 0.3).

Prints the share of refused faces the second look turns into read ones, by band of each feature, and for a few
triggers (which refused faces get a second look) the second looks spent per detected face against the faces
turned (valid faces that only the second look keeps, i.e. below the present score, and false detections
turned). `--video` adds the same log on a video through the whole front end (its fresh detections only; no
ground truth there).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from crowds_eval import iou_matrix, read_annotations  # noqa: E402

from vision.audience import PRESENCE_MIN, box_roi  # noqa: E402
from vision.facemesh import FaceMesh, FaceMeshOptions, regions_from_boxes, regions_from_landmarks  # noqa: E402
from vision.registry import model_file  # noqa: E402

FIELDS = ("p1", "score", "face_px", "offset", "extent", "p2", "valid", "readable", "false")


def first_look_geometry(landmarks: np.ndarray, regions: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the first look's landmarks sit in its crop: (offset of their box centre from the crop centre,
    their box's larger side), both as a share of the crop side."""
    xy = landmarks[:, :, :2] * (width, height)
    lo, hi = xy.min(axis=1), xy.max(axis=1)
    side = regions[:, 2]
    offset = np.hypot(*((lo + hi) / 2 - regions[:, :2]).T) / side
    extent = (hi - lo).max(axis=1) / side
    return offset.astype(np.float32), extent.astype(np.float32)


def log_photo(mesh: FaceMesh, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, scale: float, shift: float,
              gate: float) -> np.ndarray:
    """[K, 6] p1, score, face_px, offset, extent, p2 for the refused first readings of one photo; and [K] the
    indices of those detections."""
    h, w = image.shape[:2]
    regions = regions_from_boxes(boxes, scale, shift)
    first = mesh.read_regions(image, regions, gate)
    refused = np.flatnonzero((first.presence < gate) & (first.presence > 0))
    if len(refused) == 0:
        return np.zeros((0, 6), np.float32), refused
    second = mesh.read_regions(image, regions_from_landmarks(first.landmarks[refused], w, h), gate)
    offset, extent = first_look_geometry(first.landmarks[refused], regions[refused], w, h)
    rows = np.stack([first.presence[refused], scores[refused], boxes[refused, 3] - boxes[refused, 1], offset, extent,
                     second.presence], axis=1)
    return rows.astype(np.float32), refused


def crowds_log(folder: Path, limit: int | None, gate: float) -> tuple[np.ndarray, int]:
    """The log over the crowd photos ([K, len(FIELDS)]) and the number of detections."""
    from vision.detection import build_detector

    truth = read_annotations(folder / "wider_face_bbx_gt.txt")
    detector = build_detector("centerface+mtcnn", centerface=model_file("centerface").path,
                              mtcnn=tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet")))
    scale, shift = box_roi("centerface+mtcnn")
    rows, detections = [], 0
    with FaceMesh(FaceMeshOptions(model_file("face_landmarks").path, model_file("face_blendshapes").path)) as mesh:
        for name in list(truth)[:limit]:
            image = cv2.imread(str(folder / "images" / name))
            boxes, scores = detector.detect(image)
            detections += len(boxes)
            log, idx = log_photo(mesh, image, boxes, scores, scale, shift, gate)
            if not len(log):
                continue
            a = truth[name]
            m = iou_matrix(boxes[idx], a.boxes)
            best = m.argmax(axis=1) if m.shape[1] else np.zeros(len(idx), int)
            hit = (m.max(axis=1) >= 0.3) if m.shape[1] else np.zeros(len(idx), bool)
            valid = hit & a.valid[best] if m.shape[1] else hit
            readable = hit & a.readable[best] if m.shape[1] else hit
            rows.append(np.concatenate([log, np.stack([valid, readable, ~hit], 1).astype(np.float32)], axis=1))
    detector.close()
    return (np.concatenate(rows) if rows else np.zeros((0, len(FIELDS)), np.float32)), detections


def video_log(path: Path, gate: float) -> tuple[np.ndarray, int]:
    """The log of the whole front end's second looks on a video ([K, 6], no ground truth), and its fresh
    detections."""
    from _bench import audience_front_end
    from vision.capture import VideoSource, resolve_inputs
    from vision.settings import AUDIENCE_FPS

    fe = audience_front_end()
    scale = fe.options.box_scale
    rows, fresh_total = [], [0]
    mesh = fe._meshes[0]

    def logged(image, readings, fresh, dim=False):  # as AudienceLandmarker._second_look; logs dim frames too
        h, w = image.shape[:2]
        fresh_total[0] += int(fresh.sum())
        idx = np.flatnonzero(fresh & (readings.presence < gate) & (readings.presence > 0))
        if len(idx):
            second = mesh.read_regions(image, regions_from_landmarks(readings.landmarks[idx], w, h), gate)
            offset, extent = first_look_geometry(readings.landmarks[idx], readings.regions[idx], w, h)
            side = readings.regions[idx, 2] / scale
            rows.append(np.stack([readings.presence[idx], np.full(len(idx), np.nan), side, offset, extent,
                                  second.presence], axis=1))
        return readings  # the front end goes on as without a second look; the log holds what one would give

    fe._second_look = logged
    try:
        with VideoSource(resolve_inputs([str(path)])[0], analysis_fps=AUDIENCE_FPS) as source:
            for frame in source:
                fe.landmark(frame)
    finally:
        fe.close()
    return (np.concatenate(rows) if rows else np.zeros((0, 6))), fresh_total[0]


def bands(log: np.ndarray, gate: float) -> None:
    turned = log[:, 5] >= gate
    for k, edges in ((0, (0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)), (1, (0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.01)),
                     (2, (0, 24, 32, 48, 80, 1e9)), (3, (0, 0.03, 0.06, 0.1, 0.15, 1e9)),
                     (4, (0, 0.4, 0.5, 0.6, 0.7, 1e9))):
        cells = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (log[:, k] >= lo) & (log[:, k] < hi)
            if sel.any():
                cells.append(f"{lo:g}-{hi:g}: {turned[sel].mean():.2f} of {int(sel.sum())}")
        print(f"  turned by {FIELDS[k]:8s} " + "; ".join(cells))


TRIGGERS = {
    "every refused (today)": lambda L: np.ones(len(L), bool),
    "p1 >= 0.01 (shipped)": lambda L: L[:, 0] >= 0.01,
    "p1 >= 0.05": lambda L: L[:, 0] >= 0.05,
    "p1 >= 0.1": lambda L: L[:, 0] >= 0.1,
    "p1 >= 0.2": lambda L: L[:, 0] >= 0.2,
    "score < 0.8": lambda L: L[:, 1] < 0.8,
    "score < 0.8, p1 >= 0.05": lambda L: (L[:, 1] < 0.8) & (L[:, 0] >= 0.05),
    "score < 0.8, p1 >= 0.1": lambda L: (L[:, 1] < 0.8) & (L[:, 0] >= 0.1),
    "offset >= 0.06": lambda L: L[:, 3] >= 0.06,
    "p1 >= 0.1 or offset >= 0.06": lambda L: (L[:, 0] >= 0.1) | (L[:, 3] >= 0.06),
    "p1 >= 0.05 and offset >= 0.04": lambda L: (L[:, 0] >= 0.05) & (L[:, 3] >= 0.04),
}


def triggers(log: np.ndarray, detections: int, gate: float, present_min: float = 0.8) -> None:
    turned = log[:, 5] >= gate
    truth = log.shape[1] > 6
    print(f"  {'trigger':32s} {'looks/face':>10s} {'turned':>7s}" + (f" {'valid kept':>10s} {'readable':>9s} "
                                                                       f"{'valid read':>10s} {'false':>6s}" if truth else ""))
    for name, rule in TRIGGERS.items():
        sel = rule(log) if truth else rule(np.nan_to_num(log, nan=0.0))
        t = turned & sel
        line = f"  {name:32s} {sel.sum() / max(detections, 1):10.3f} {int(t.sum()):7d}"
        if truth:
            kept = t & (log[:, 1] < present_min)  # a face present only because the second look read it
            line += (f" {int((kept & (log[:, 6] > 0)).sum()):10d} {int((kept & (log[:, 7] > 0)).sum()):9d}"
                     f" {int((t & (log[:, 6] > 0)).sum()):10d} {int((t & (log[:, 8] > 0)).sum()):6d}")
        print(line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("crowds", type=Path, help="the crowds folder (images/ and wider_face_bbx_gt.txt)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos")
    ap.add_argument("--video", type=Path, default=None, help="also log the front end's fresh detections on this video")
    ap.add_argument("--csv", type=Path, default=None, help="write the crowd log here")
    args = ap.parse_args(argv)
    if not (args.crowds / "wider_face_bbx_gt.txt").is_file():
        print(f"{args.crowds}: no wider_face_bbx_gt.txt there", file=sys.stderr)
        return 3
    cv2.setNumThreads(1)
    gate = PRESENCE_MIN
    log, n = crowds_log(args.crowds, args.limit, gate)
    print(f"crowds: {n} detections, {len(log)} refused by the gate ({len(log) / max(n, 1):.2f} per detection), "
          f"{int((log[:, 5] >= gate).sum())} turned by a second look")
    bands(log, gate)
    triggers(log, n, gate)
    if args.csv:
        np.savetxt(args.csv, log, delimiter=",", header=",".join(FIELDS), comments="", fmt="%.4f")
    if args.video:
        vlog, fresh = video_log(args.video, gate)
        print(f"{args.video.name}: {fresh} fresh detections, {len(vlog)} refused, "
              f"{int((vlog[:, 5] >= gate).sum()) if len(vlog) else 0} turned by a second look")
        if len(vlog):
            bands(vlog, gate)
            triggers(vlog, fresh, gate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
