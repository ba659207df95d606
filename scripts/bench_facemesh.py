"""Milliseconds per face on one thread: FaceMesh's two models, its whole `read`, and MediaPipe's landmarker.

    python scripts/bench_facemesh.py [--rounds 7] [--faces 40] [IMAGE ...]

Faces: those MediaPipe finds in the images (default: fixtures/images/*.jpg), each read from a box around
its landmarks. Measured in the same run, the four steps one after the other on each face, median over rounds:
- landmark model: LiteRT invoke on a prepared 256x256 input;
- blendshape model: LiteRT invoke on prepared 146 points;
- read: `FaceMesh.read` per face (ROI, crop, colour conversion, both models, mapping back);
- MediaPipe: its landmarker in IMAGE mode on the same 256x256 crops (its own detector, landmarks and
  blendshapes).
Prints each figure and read / (landmark + blendshape) (target <= 1.2), and read / the time of the model
calls inside the same reads, the overhead of `read` measured free of the host's load. Times vary with the host's load:
compare the ratios, not the absolute figures, across runs. `--clock cpu` (default) times with the process's CPU
time (every model runs on one thread, so this is time on one core, and a loaded host slows every step alike
without adding its waits); `--clock wall` with the wall clock.

`--crowds DIR` (../shared/data/crowds) adds the audience front end's whole reading stage per face on its first
`--photos` photos, each one frame (`vision.audience.AudienceLandmarker`, one thread): everything but the
detector (crops, both models, the second look, mapping back, head pose, merging) per detected face, over the
time of one landmark + blendshape model call pair measured inside the same run (the model calls are timed where
they happen, so the host's load cancels); target <= 1.2. `--against COMMIT` also times that commit's
`FaceMesh.read_regions` against today's on the same crowd faces, interleaved (old / new, the same run).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vision.facemesh import (BLENDSHAPE_LANDMARKS, CROP_SIZE, FaceMesh, FaceMeshOptions, _LiteRT,  # noqa: E402
                             crop_matrices, regions_from_boxes)
from vision.landmarker import Landmarker, LandmarkerOptions  # noqa: E402
from vision.registry import model_file  # noqa: E402

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]  # set by --clock


def faces_in(paths: list[Path], landmarker_path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(image, box [1,4] x1 y1 x2 y2)] for every face MediaPipe finds."""
    from vision.capture import Frame

    out = []
    with Landmarker(LandmarkerOptions(landmarker_path, mode="image", max_faces=10)) as lm:
        for p in paths:
            image = cv2.imread(str(p))
            if image is None:
                continue
            h, w = image.shape[:2]
            for face in lm.landmark(Frame(str(p), 0, 0.0, image))[0]:
                xy = face[:, :2] * (w, h)
                out.append((image, np.concatenate([xy.min(0), xy.max(0)])[None].astype(np.float32)))
    return out


class Timed:
    """Wraps a model runner and adds up the time spent in it (to split `read` into models and the rest)."""

    def __init__(self, runner):
        self.runner, self.spent, self.calls = runner, 0.0, 0

    def _timed(self, fn, *args):
        self.calls += 1
        t0 = clock()
        out = fn(*args)
        self.spent += clock() - t0
        return out

    def __call__(self, x):
        return self._timed(self.runner, x)

    def run_image(self, bgr, outputs=None):
        return self._timed(self.runner.run_image, bgr, outputs)


def within_read(mesh: FaceMesh, faces, rounds: int) -> float:
    """read's time / the time of the model calls inside those same reads (robust to the host's load)."""
    timed = [Timed(mesh._landmarks), Timed(mesh._blendshapes)]
    mesh._landmarks, mesh._blendshapes = timed
    try:
        t0 = clock()
        for _ in range(rounds):
            for face in faces:
                mesh.read(*face)
        total = clock() - t0
    finally:
        mesh._landmarks, mesh._blendshapes = timed[0].runner, timed[1].runner
    return total / (timed[0].spent + timed[1].spent)


def front_end_cost(crowds: Path, photos: int, rounds: int) -> dict:
    """The audience front end's reading stage on crowd photos: seconds outside the detector, seconds in the two
    models, detected faces, model call pairs (a face read twice by the second look is two pairs)."""
    from _bench import audience_front_end
    from vision.capture import Frame

    images = [cv2.imread(str(p)) for p in sorted((crowds / "images").glob("*.jpg"))[:photos]]
    fe = audience_front_end()
    mesh = fe._meshes[0]
    timed = [Timed(mesh._landmarks), Timed(mesh._blendshapes)]
    mesh._landmarks, mesh._blendshapes = timed
    detections = {}  # the detector runs once per photo, outside the timing
    real = fe._detector

    class Replay:
        def detect(self, image):
            return detections[id(image)]

    fe._detector = Replay()
    try:
        for image in images:
            detections[id(image)] = real.detect(image)
        total, faces = 0.0, 0
        for _ in range(rounds):
            for image in images:
                fe.reset()
                t0 = clock()
                fe.landmark(Frame("crowd", 0, 0.0, image))
                total += clock() - t0
                faces += len(detections[id(image)][0])
        models = timed[0].spent + timed[1].spent
        pair = timed[0].spent / max(timed[0].calls, 1) + timed[1].spent / max(timed[1].calls, 1)
    finally:
        fe._detector = real
        fe.close()
    return {"seconds": total, "models": models, "faces": faces, "pairs": timed[0].calls, "pair": pair,
            "blendshape calls": timed[1].calls}


def _old_facemesh(commit: str):
    """`vision/facemesh.py` as it was at `commit`, imported under another name."""
    from _bench import module_at

    return module_at(commit, "vision/facemesh.py", "vision_facemesh_old")


def read_against(commit: str, crowds: Path, photos: int, rounds: int) -> tuple[float, float, int]:
    """Seconds in `read_regions` of `commit`'s FaceMesh and of today's, one face at a time, interleaved, on the
    faces CenterFace finds in the crowd photos; and the number of faces."""
    from vision.centerface import CenterFaceDetector, CenterFaceOptions

    old = _old_facemesh(commit)
    paths = (model_file("face_landmarks").path, model_file("face_blendshapes").path)
    detector = CenterFaceDetector(CenterFaceOptions(model_file("centerface").path))
    work = []
    for p in sorted((crowds / "images").glob("*.jpg"))[:photos]:
        image = cv2.imread(str(p))
        work += [(image, r[None]) for r in regions_from_boxes(detector.detect(image)[0], 1.5, 0.02)]
    spent = np.zeros(2)
    with old.FaceMesh(old.FaceMeshOptions(*paths)) as before, FaceMesh(FaceMeshOptions(*paths)) as now:
        for _ in range(rounds):
            for image, region in work:
                for k, mesh in enumerate((before, now)):
                    t0 = clock()
                    mesh.read_regions(image, region)
                    spent[k] += clock() - t0
    return spent[0], spent[1], len(work)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*", type=Path)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--faces", type=int, default=40, help="faces per round (the found faces, repeated)")
    ap.add_argument("--crowds", type=Path, default=None, help="also the front end's reading stage on these crowd photos")
    ap.add_argument("--photos", type=int, default=10, help="with --crowds: how many photos")
    ap.add_argument("--against", default=None, help="with --crowds: a git commit whose FaceMesh read is timed too")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="cpu",
                    help="cpu: the process's CPU time (default; robust to the host's load), wall: the wall clock")
    args = ap.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    cv2.setNumThreads(1)
    paths = args.images or sorted((ROOT / "fixtures" / "images").glob("*.jpg"))
    task = model_file("face_landmarker").path
    lm_path, bs_path = model_file("face_landmarks").path, model_file("face_blendshapes").path
    found = faces_in(paths, task)
    if not found:
        print("no face found in the images", file=sys.stderr)
        return 1
    faces = [found[i % len(found)] for i in range(args.faces)]
    crops = [cv2.warpAffine(img, crop_matrices(regions_from_boxes(box))[0], (CROP_SIZE, CROP_SIZE),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for img, box in faces]
    inputs = [cv2.cvtColor(c, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255 for c in crops]
    landmarks_model, blendshapes_model = _LiteRT(lm_path, 1), _LiteRT(bs_path, 1)
    points = [(landmarks_model(x)[0].reshape(478, 3)[list(BLENDSHAPE_LANDMARKS), :2])[None].copy() for x in inputs]

    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    mp_images = [mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(cv2.cvtColor(c, cv2.COLOR_BGR2RGB)))
                 for c in crops]
    mp_task = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(task)), running_mode=vision.RunningMode.IMAGE, num_faces=1,
        output_face_blendshapes=True, output_facial_transformation_matrixes=False))
    names = ("landmark model", "blendshape model", "read", "MediaPipe landmarker on the crop")
    figures = {k: [] for k in names}
    found_by_mediapipe = 0
    with FaceMesh(FaceMeshOptions(lm_path, bs_path, threads=1)) as mesh, mp_task:
        steps = (lambda i: landmarks_model(inputs[i]), lambda i: blendshapes_model(points[i]),
                 lambda i: mesh.read(*faces[i]), lambda i: mp_task.detect(mp_images[i]))
        for _ in range(args.rounds):  # the four steps face by face, so the host's load hits them alike
            spent = np.zeros(len(steps))
            for i in range(len(faces)):
                for k, step in enumerate(steps):
                    t0 = clock()
                    out = step(i)
                    spent[k] += clock() - t0
                found_by_mediapipe += len(out.face_landmarks)
            for k, name in enumerate(names):
                figures[name].append(spent[k] * 1000 / len(faces))
        inside = within_read(mesh, faces, args.rounds)
    med = {k: float(np.median(v)) for k, v in figures.items()}
    print(f"{len(found)} faces in {len(paths)} images, {args.faces} per round, {args.rounds} rounds, one thread "
          f"(LiteRT {lm_path.name}); {args.clock} clock; host load {os.getloadavg()[0]:.1f}")
    for k, v in med.items():
        print(f"  {k:34s} {v:6.2f} ms per face (rounds {min(figures[k]):.2f}-{max(figures[k]):.2f})")
    models = med["landmark model"] + med["blendshape model"]
    print(f"  read / (landmark + blendshape)     {med['read'] / models:6.2f}  (target <= 1.2)")
    print(f"  read / (its own model calls)       {inside:6.2f}  (the same reads, so the host's load cancels)")
    print(f"  MediaPipe found a face on {found_by_mediapipe / args.rounds / len(faces):.0%} of the crops")
    print(f"  MediaPipe / read                   {med['MediaPipe landmarker on the crop'] / med['read']:6.2f}")
    if args.crowds is not None:
        c = front_end_cost(args.crowds, args.photos, max(1, args.rounds // 3))
        pair = c["pair"]  # one landmark + one blendshape call, each timed where it ran in this same run
        print(f"  front end on {args.photos} crowd photos: {c['faces']} detected faces, "
              f"{c['pairs'] / max(c['faces'], 1):.2f} landmark model calls per face (the second look), "
              f"{c['blendshape calls'] / max(c['faces'], 1):.2f} blendshape model calls")
        print(f"  reading stage per face             {1000 * c['seconds'] / max(c['faces'], 1):6.2f} ms "
              f"(models {1000 * pair:.2f} ms per call pair)")
        print(f"  reading stage / (landmark + blendshape) per face {c['seconds'] / max(c['faces'], 1) / pair:6.2f}"
              f"  (target <= 1.2; the same run)")
        if args.against:
            before, now, n = read_against(args.against, args.crowds, args.photos, max(1, args.rounds // 3))
            print(f"  read_regions {args.against} / today on {n} crowd faces, interleaved: {before / now:6.2f} "
                  f"({1000 * before / n / max(1, args.rounds // 3):.2f} / {1000 * now / n / max(1, args.rounds // 3):.2f} ms per face)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
