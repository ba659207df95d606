"""Face detectors and the audience front end on real crowd photos (WIDER FACE subset), in one run, one table.

    python scripts/bench_crowds.py ../shared/data/crowds [--limit N] [--dim] [--only NAME,NAME] [--json FILE]

For each candidate (a function image -> face boxes), over the photos of `crowds/images`: recall of the valid
faces 20-150 px tall and of the readable ones (no occlusion, typical pose, blur < 2), by size band, false
positives per image (a box that overlaps no annotated face, valid or not) and milliseconds per image on one
thread, all at IoU >= 0.3 (`scripts/crowds_eval.py` holds the rules). `--dim` adds every candidate again on
the dim grey variant (`make_dim_crowds.dim`: grey, gamma 1.6, gain 0.45, sensor noise sigma 4), made on the
fly, with the readable recall it loses.

The "front end" rows run a whole audience front end on each photo as one frame (image mode): main's old
`AudienceLandmarker` (detector + MediaPipe's Tasks landmarker on each crop, from the git commit
`OLD_FRONT_END` when `--old` is given) and the shipped one (`vision.audience`: detector + FaceMesh on each
box + presence gate), its boxes as `audience analyze` writes them. A front end gives two rows: "[read]"
counts the faces read (landmarked, presence >= the gate), "[read+present]" also the faces kept as present
(detector score >= 0.8 on the common scale, 0.65 on a dim frame, not read). A candidate may return {row
suffix: boxes}. The shipped front end's rows share one run of its detector per photo: the first such row's
ms/img counts the detector, the next ones' do not. "front end no low-light" is the shipped front end without what it does on dim frames (FaceMesh
reads them through a 3 px Gaussian blur; unreadable faces kept from score 0.65).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from crowds_eval import BANDS, Score, read_annotations  # noqa: E402
from make_dim_crowds import dim  # noqa: E402

from vision.detector import nms  # noqa: E402
from vision.registry import model_file  # noqa: E402

Boxes = Callable[[np.ndarray], np.ndarray]  # BGR image -> [N,4] x1,y1,x2,y2 pixels


def _mtcnn(min_face: int, thresholds=(0.6, 0.7, 0.7)):
    from vision.detector import MtcnnDetector, MtcnnOptions

    d = MtcnnDetector(MtcnnOptions(*(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet")),
                                   min_face=min_face, thresholds=thresholds))
    return (lambda image: d.detect(image)[0]), (lambda: None)


def _centerface(**options):
    from vision.centerface import CenterFaceDetector, CenterFaceOptions

    d = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path, **options))
    return (lambda image: d.detect(image)[0]), d.close


def _built(name: str):
    """A detector as `audience analyze --detector NAME` builds it."""
    from vision.detection import build_detector

    d = build_detector(name, centerface=model_file("centerface").path,
                       mtcnn=tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet")))
    return (lambda image: d.detect(image)[0]), d.close


def _union(*factories, iou: float = 0.3):
    """Several detectors' boxes, one box per face (the earlier detector's wins)."""
    made = [f() for f in factories]

    def detect(image):
        found = [fn(image) for fn, _ in made]
        boxes = np.concatenate(found)
        priority = np.concatenate([np.full(len(b), float(len(found) - k)) for k, b in enumerate(found)])
        return boxes[np.sort(nms(boxes, priority, iou))]

    return detect, (lambda: [close() for _, close in made])


def _front_end(detector: str = "centerface+mtcnn", presence_min: float | None = None, box_scale=None,
               box_shift=None, second_look: bool = True, present_min_score: float | None = None, **options):
    """The shipped audience front end (vision.audience) as `audience analyze --scene audience` builds it."""
    from _bench import audience_front_end

    given = {"presence_min": presence_min, "box_scale": box_scale, "box_shift": box_shift,
             "present_min_score": present_min_score}
    fe = audience_front_end(detector, second_look=second_look, **{k: v for k, v in given.items() if v is not None},
                            **options)

    fe._detector = _Replayed(fe._detector, detector)
    return _photo_detector(fe), fe.close


_DETECTIONS: dict = {}  # (detector, shape, crc32 of the pixels) -> the default detector's (boxes, scores), across rows


class _Replayed:
    """The front end's detector, its output on a photo remembered for the next front-end rows of the run
    (the front-end variants differ after the detector; their ms/img then count everything but detection)."""

    def __init__(self, detector, name: str):
        self.detector, self.name = detector, name

    def detect(self, image):
        import zlib

        key = (self.name, image.shape, zlib.crc32(np.ascontiguousarray(image).data))
        if key not in _DETECTIONS:
            _DETECTIONS[key] = self.detector.detect(image)
        return _DETECTIONS[key]

    def close(self):
        self.detector.close()


def _photo_detector(fe):
    """A front end run on one photo as one frame -> its faces' pixel boxes, read only and read or present."""
    from vision.capture import Frame

    def detect(image):
        fe.reset()
        h, w = image.shape[:2]
        faces = fe.landmark(Frame("crowd", 0, 0.0, image))
        b = faces.boxes
        px = np.stack([b[:, 0] * w, b[:, 1] * h, (b[:, 0] + b[:, 2]) * w, (b[:, 1] + b[:, 3]) * h], axis=1)
        return {" [read]": px[faces.readable], " [read+present]": px}

    return detect


def _front_end_old(commit: str):
    """main's old front end (MediaPipe's Tasks landmarker on each crop), imported from `commit`'s files."""
    from _bench import module_at

    old = module_at(commit, "vision/audience.py", "vision_audience_old")

    fe = old.AudienceLandmarker(old.AudienceOptions(model_file("face_landmarker").path,
                                                    tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet")),
                                                    threads=1, detector="centerface+mtcnn",
                                                    centerface=model_file("centerface").path))

    return _photo_detector(fe), fe.close


OLD_FRONT_END = "e029794"  # main when the FaceMesh front end replaced the Tasks landmarker on crops

CANDIDATES: dict[str, Callable[[], tuple[Boxes, Callable]]] = {
    "mtcnn min32 (main)": lambda: _mtcnn(32),
    "mtcnn min20": lambda: _mtcnn(20),
    "mtcnn min16": lambda: _mtcnn(16),
    "mtcnn min16 thr .6/.7/.5": lambda: _mtcnn(16, (0.6, 0.7, 0.5)),
    "centerface (shipped)": lambda: _centerface(),
    "centerface+mtcnn (default)": lambda: _built("centerface+mtcnn"),
    "centerface t.4": lambda: _centerface(threshold=0.4, low_light_luma=0),
    "centerface t.45": lambda: _centerface(threshold=0.45, low_light_luma=0),
    "centerface t.5": lambda: _centerface(threshold=0.5, low_light_luma=0),
    "centerface x1.5 t.45": lambda: _centerface(threshold=0.45, scale=1.5, low_light_luma=0),
    "centerface t.35 + mtcnn min16": lambda: _union(lambda: _centerface(threshold=0.35, low_light_luma=0),
                                                    lambda: _mtcnn(16)),
    "front end (old: Tasks landmarker)": lambda: _front_end_old(OLD_FRONT_END),
    "front end": _front_end,
    "front end no second look": lambda: _front_end(second_look=False),
    "front end second look from 0": lambda: _front_end(second_look_min=0.0),
    "front end second look from .05": lambda: _front_end(second_look_min=0.05),
    "front end present .9": lambda: _front_end(present_min_score=0.9),
    "front end no low-light": lambda: _front_end(low_light_blur=0, present_min_score_dim=0.8),
    "front end no low-light blur": lambda: _front_end(low_light_blur=0),
    "front end low-light present .8": lambda: _front_end(present_min_score_dim=0.8),
    "front end gate .3": lambda: _front_end(presence_min=0.3),
    "front end gate .4": lambda: _front_end(presence_min=0.4),
    "front end gate .7": lambda: _front_end(presence_min=0.7),
    "front end gate .1": lambda: _front_end(presence_min=0.1),
    "front end roi 1.7": lambda: _front_end(box_scale=1.7),
}


def run(folder: Path, names: list[str], limit: int | None, with_dim: bool) -> list[dict]:
    truth = read_annotations(folder / "wider_face_bbx_gt.txt")
    files = list(truth)[:limit]
    images = {}
    for f in files:
        img = cv2.imread(str(folder / "images" / f))
        if img is None:
            raise SystemExit(f"{folder / 'images' / f}: not a readable image")
        images[f] = img
    variants = [("", lambda name, img: img)] + ([(" (dim)", lambda name, img: dim(img, seed=name))] if with_dim else [])
    rows = []
    for name in names:
        detect, close = CANDIDATES[name]()
        try:
            detect(next(iter(images.values())))  # warm up (session allocations)
            for suffix, variant in variants:
                scores: dict[str, Score] = {}
                for f in files:
                    image = variant(f, images[f])
                    t0 = time.perf_counter()
                    found = detect(image)
                    seconds = time.perf_counter() - t0
                    for kind, boxes in (found.items() if isinstance(found, dict) else [("", found)]):
                        scores.setdefault(kind, Score(iou=0.3)).add(truth[f], boxes, seconds)
                for kind, score in scores.items():
                    rows.append({"candidate": name + kind + suffix, **score.row()})
                    print(f"  {rows[-1]['candidate']}: readable {rows[-1]['readable']:.3f} "
                          f"valid {rows[-1]['valid']:.3f} fp/img {rows[-1]['fp/img']:.2f} "
                          f"ms/img {rows[-1]['ms/img']:.0f}", file=sys.stderr, flush=True)
        finally:
            close()
    return rows


def table(rows: list[dict]) -> str:
    cols = ["readable", "valid"] + [f"valid {lo}-{hi}" for lo, hi in BANDS] + [f"read {lo}-{hi}" for lo, hi in BANDS]
    head = ["candidate"] + cols + ["fp/img", "ms/img"] + (["dim loses"] if any("(dim)" in r["candidate"] for r in rows) else [])
    base = {r["candidate"]: r["readable"] for r in rows}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["candidate"]] + [f"{r[c]:.3f}" for c in cols] + [f"{r['fp/img']:.2f}", f"{r['ms/img']:.0f}"]
        if head[-1] == "dim loses":
            orig = base.get(r["candidate"].replace(" (dim)", ""))
            cells.append(f"{orig - r['readable']:+.3f}" if "(dim)" in r["candidate"] and orig is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("crowds", type=Path, help="the crowds folder (images/ and wider_face_bbx_gt.txt)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos")
    ap.add_argument("--dim", action="store_true", help="also run every candidate on the dim grey variant")
    ap.add_argument("--only", default=None, help=f"comma-separated candidates (default all): {', '.join(CANDIDATES)}")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    if not (args.crowds / "wider_face_bbx_gt.txt").is_file():
        print(f"{args.crowds}: no wider_face_bbx_gt.txt there", file=sys.stderr)
        return 3
    names = [n.strip() for n in args.only.split(",")] if args.only else list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        print(f"unknown candidate(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    rows = run(args.crowds, names, args.limit, args.dim)
    n = args.limit or "all"
    print(f"crowds: {n} photos, IoU >= 0.3, recall of valid faces 20-150 px and of readable ones "
          f"(no occlusion, typical pose, blur < 2), one thread")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
