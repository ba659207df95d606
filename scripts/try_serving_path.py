"""Train/serve skew of the default head on small faces: the shared photos' venue copies read as an audience is read.

    python scripts/try_serving_path.py ../shared/data/expressions [--crowds ../shared/data/crowds/images]
                                       [--copies 2] [--workers 2]

The heads are trained on readings taken the photo way (`expression_data`: the MediaPipe landmarker on the whole
photo, a venue copy shrunk to a 24-64 px face and then restored to the photo's size). An audience is read
another way: a detector box in a wide frame, FaceMesh on that box, the CNN crops cut from the small face itself.
This script renders each photo's venue copy (`degrade.venue`'s recipe, not restored: the face stays 24-64 px)
in a dim frame three times its size and reads it through the audience scene (`vision.pipeline.analyze_job`,
the shipped default head's inputs kept in memory, numbers only). It prints, from subject-disjoint 5-fold CV:

1. v6's recipe as shipped (trained on the photo-way conditions) and the same recipe with the serving-path copies
   added to its training folds: macro recall over 7 and 5 classes, the calibration error (max over classes of
   |mean probability - share|) and the mean-probability shares of disgust and neutral, per condition, the
   serving-path copies included;
2. with `--crowds` (real crowd photos without labels, e.g. WIDER FACE: measured, never trained or tuned on):
   each variant retrained on all the photos, the share of crowd faces whose label is disgust / neutral per band
   of face height, by the shipped label (the balanced decision) and by the calibrated probabilities' argmax.

The serving-path readings are cached in `--cache` (keyed on the photos, the models and this recipe).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import degrade  # noqa: E402
import expression_data as ed  # noqa: E402
import fusion_v2 as v2  # noqa: E402
import try_head_inputs as thi  # noqa: E402

HEAD = "fusion-v6"
WIDTH = thi.WIDTH
DEFAULT_CACHE = Path("/tmp/audience_serving_path_v6.npz")
FRAME_MIN = (320, 240)  # the smallest frame a copy is shown in (width, height)


def venue_small(image: np.ndarray, box: degrade.FaceBox, rng: np.random.Generator) -> np.ndarray:
    """`degrade.venue`'s copy (same recipe, same random draws) before it is restored to the photo's size: the
    face 24-64 px wide, as a venue camera's sensor records it."""
    with mock.patch.object(degrade, "restore", lambda small, shape: small):
        return degrade.venue(image, box, rng)


def in_frame(small: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The small copy at the centre of a dim frame three times its size (at least FRAME_MIN), the background a
    little darker than the copy's edges, with sensor noise: a face the detector has to find."""
    h, w = small.shape[:2]
    height, width = max(FRAME_MIN[1], 3 * h), max(FRAME_MIN[0], 3 * w)
    edges = np.concatenate([small[0].ravel(), small[-1].ravel(), small[:, 0].ravel(), small[:, -1].ravel()])
    level = 0.6 * float(np.median(edges))
    frame = np.clip(level + rng.normal(0.0, 3.0, (height, width, 3)), 0, 255).astype(np.uint8)
    y0, x0 = (height - h) // 2, (width - w) // 2
    frame[y0:y0 + h, x0:x0 + w] = small
    return frame


def render(rows: list, folder: Path, copies: int) -> None:
    """Write every photo's serving-path copies into `folder` as `<index>_<copy>.png` (the face box from the
    landmarker on the full photo, as expression_data degrades around it)."""
    from vision.capture import Frame
    from vision.landmarker import Landmarker, LandmarkerOptions
    from vision.quiet import native_stderr_to_devnull
    from vision.registry import model_file

    with native_stderr_to_devnull():
        lm = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image", max_faces=1))
    with lm:
        for i, (path, _) in enumerate(rows):
            image = ed.read_image(str(path))
            if image is None:
                continue
            with native_stderr_to_devnull():
                obs = lm.detect(Frame(path.name, 0, 0.0, image))
            box = (ed._face_box(obs, degrade) if len(obs) else
                   degrade.FaceBox.default(image.shape[1], image.shape[0]))
            for k in range(copies):
                small = venue_small(image, box, np.random.default_rng([i, k, 1]))
                cv2.imwrite(str(folder / f"{i}_{k}.png"), in_frame(small, np.random.default_rng([i, k, 2])))


def read_through_scene(files: list[Path | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shipped default head's inputs [N, WIDTH] for the largest face read in each file (zeros where none was
    read or the file is None), whether one was, and its face_px: the audience scene (`try_head_inputs.scene_inputs`)."""
    from vision.capture import resolve_inputs

    named = [i for i, path in enumerate(files) if path is not None]
    inputs, faces = thi.scene_inputs(resolve_inputs([str(files[i]) for i in named]) if named else [])
    x, px = np.zeros((len(files), WIDTH), np.float32), np.zeros(len(files))
    for row, (source, size) in enumerate(zip(faces["source"], faces["face_px"])):
        i = named[source]
        if size > px[i]:
            x[i], px[i] = inputs[row], size
    return x, px > 0, px


class HeadInputs:
    """A condition whose head inputs were taken whole (`expression_data.Readings`' interface for v6's rows)."""

    def __init__(self, x: np.ndarray, found: np.ndarray):
        self.x, self.found = x, found

    def v5_features(self, flip: bool = False, fer_flip: bool | None = None) -> np.ndarray:
        return self.x


def serving_conditions(labelled_dir: Path, cache: Path, copies: int) -> dict[str, HeadInputs]:
    """condition ("serve0", ...) -> the photos' serving-path head inputs, cached in `cache`."""
    import tempfile

    from vision.registry import model_file

    rows = ed.read_labels(labelled_dir)
    key = hashlib.sha256((ed._cache_key(rows) + model_file("fusion").sha256 + Path(__file__).read_text()
                          + str(copies)).encode()).hexdigest()
    if cache.is_file():
        z = np.load(cache)
        if str(z["key"]) == key:
            return {f"serve{k}": HeadInputs(z[f"x{k}"], z[f"found{k}"]) for k in range(copies)}
    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        render(rows, Path(tmp), copies)
        for k in range(copies):
            files = [p if p.is_file() else None for p in (Path(tmp) / f"{i}_{k}.png" for i in range(len(rows)))]
            arrays[f"x{k}"], arrays[f"found{k}"], _ = read_through_scene(files)
            print(f"serving-path copy {k}: a face read in {arrays[f'found{k}'].mean():.3f} of the photos", flush=True)
    np.savez_compressed(cache, key=key, **arrays)
    return {f"serve{k}": HeadInputs(arrays[f"x{k}"], arrays[f"found{k}"]) for k in range(copies)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--crowds", type=Path, default=None, help="a folder of real crowd photos (no labels needed)")
    ap.add_argument("--copies", type=int, default=2, help="serving-path copies per photo")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args(argv)
    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    readings = dict(ed.read_conditions(args.labelled_dir, ed.DEFAULT_CACHE, workers=args.workers))
    photo_way = list(readings)
    readings.update(serving_conditions(args.labelled_dir, args.cache, args.copies))
    crowd = thi.crowd_inputs(args.crowds) if args.crowds else None
    variants = {"v6 as shipped": photo_way, "+ serving-path copies": list(readings)}
    print("shared photos, subject-disjoint 5-fold CV: macro recall 7 / 5 classes, calibration error, mean p disgust"
          " / neutral (true shares "
          + " / ".join(f"{s:.2f}" for s in np.bincount(y, minlength=7)[[thi.DISGUST, thi.NEUTRAL]] / len(y)) + ")")
    crowd_logits = []
    for label, train in variants.items():
        report = v2.cross_validate(readings, y, subjects, train_conds=train, with_baselines=False, head=HEAD,
                                   workers=args.workers)  # trained and calibrated on `train`, read on every condition
        logits, probs = report["_oof_logits"], report["_oof_probs"]
        print(f"  {label}")
        for k, r in readings.items():
            rep = ed.recall_report(y, np.where(r.found, logits[k].argmax(axis=1), -1))
            mean_p = probs[k][r.found].mean(axis=0)
            cal = v2.calibration_error(probs[k], y, r.found)["max_abs_error"]
            print(f"    {k:7s} {rep['macro_recall']:.3f}/{rep['macro_recall_5']:.3f} cal {cal:.3f}"
                  f"  p disgust {mean_p[thi.DISGUST]:.2f} neutral {mean_p[thi.NEUTRAL]:.2f}"
                  f"  (no face {1 - r.found.mean():.3f})")
        if crowd is not None:
            x, rows = v2.stack(readings, train, np.arange(len(y)), v2.FEATURES[HEAD])
            model = v2.make_head(HEAD).fit(x, y[rows])
            t, b = v2.final_calibration(report, y, {k: readings[k] for k in train})
            crowd_logits.append((label, model.logits(crowd[0]), t, b))
    if crowd is not None:
        print(f"\ncrowd photos ({args.crowds}): {len(crowd[0])} faces read; label disgust/neutral share per face height")
        for label, z, t, b in crowd_logits:
            thi.crowd_shares(f"{label}, label", z, crowd[1]["face_px"])
            thi.crowd_shares(f"{label}, argmax p", z / t + b, crowd[1]["face_px"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
