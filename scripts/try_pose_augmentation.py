"""Does training the default head's recipe on turned faces stop it reading real crowd faces as disgust?

    python scripts/try_pose_augmentation.py ../shared/data/expressions [--crowds ../shared/data/crowds/images]
                                            [--yaw 35] [--pitch 25] [--copies 1] [--workers 2]

The landmark-geometry block of the head (104 inputs: 52 points in an eye-aligned frame) reads head pose as
expression: on real crowd faces it adds about +1 to the disgust-minus-neutral logit at every face size
(`scripts/try_head_inputs.py`), and the shared photos, nearly all frontal, never show it a turned face. Here each
photo-way condition (`expression_data`) gets `--copies` more rows in which only the geometry block is replaced
by that of the same face turned by a random yaw and pitch (uniform within +-`--yaw` / +-`--pitch` degrees): the
photo's 3-D mesh (`expression_data.read_mesh`, MediaPipe's depth) rotated about its centroid and projected
straight onto the image plane (`turned_geometry`), the other blocks as read. v7's recipe (v6's head on the
photo-way and serving-path conditions) is then trained with and without those rows, in one run:
1. subject-disjoint 5-fold CV (a photo's copies, turned ones included, in its fold): macro recall 7 / 5
   classes, calibration error, and the macro recall by the probabilities' argmax, on the photo-way conditions and
   the serving-path copies;
2. with `--crowds` (real crowd photos without expression labels: measured, never trained or tuned on), each
   variant trained on every row: the share of crowd faces labelled disgust / neutral / sadness / happiness per
   band of face height, by the balanced label and by the argmax of the calibrated probabilities, and the
   geometry block's mean contribution to the disgust-minus-neutral logit.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402
import fusion_v2 as v2  # noqa: E402
import serving_path as sp  # noqa: E402
import try_head_inputs as thi  # noqa: E402

HEAD = "fusion-v6"  # v7 is v6's form
GEOMETRY = thi.BLOCKS["geometry"]
BANDS = ((0, 32), (32, 48), (48, 96), (96, 100000))
SHOWN = ("disgust", "neutral", "sadness", "happiness")


def turned_geometry(mesh: np.ndarray, yaw_deg: np.ndarray, pitch_deg: np.ndarray) -> np.ndarray:
    """[N, 478*3] meshes in the eye-aligned frame (`expression_data.mesh_geometry`) -> [N, 104] the geometry
    block (`vision.features.geometry_features`) of the same faces turned by yaw (about the vertical axis) then
    pitch (about the horizontal one), in degrees, about the mesh's centroid, and projected orthographically."""
    from scipy.spatial.transform import Rotation

    from vision.features import GEOMETRY_LANDMARKS, LEFT_EYE_OUTER, RIGHT_EYE_OUTER

    points = np.asarray(mesh, np.float64).reshape(len(mesh), -1, 3)
    centroid = points.mean(axis=1, keepdims=True)
    turn = Rotation.from_euler("yx", np.stack([yaw_deg, pitch_deg], axis=1), degrees=True).as_matrix()
    turned = np.einsum("nij,nkj->nki", turn, points - centroid) + centroid
    right, left = turned[:, RIGHT_EYE_OUTER, :2], turned[:, LEFT_EYE_OUTER, :2]
    d = left - right
    centre, angle = (left + right) / 2, np.arctan2(d[:, 1], d[:, 0])
    iod = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
    c, s = np.cos(-angle)[:, None], np.sin(-angle)[:, None]
    sel = turned[:, list(GEOMETRY_LANDMARKS), :2] - centre[:, None, :]
    x = (c * sel[:, :, 0] - s * sel[:, :, 1]) / iod
    y = (s * sel[:, :, 0] + c * sel[:, :, 1]) / iod
    return np.stack([x, y], axis=2).reshape(len(points), -1).astype(np.float32)


class Rows:
    """A condition as rows of v6's inputs (`fusion_v2`'s readings interface)."""

    def __init__(self, x: np.ndarray, found: np.ndarray):
        self.x, self.found = x, found

    def v5_features(self, flip: bool = False, fer_flip: bool | None = None) -> np.ndarray:
        return self.x


def turned_conditions(photo: dict, mesh: dict, yaw: float, pitch: float, copies: int, seed: int = 0) -> dict:
    """condition-turnedK -> each photo-way condition's rows with the geometry block of the face turned at random."""
    rng, out = np.random.default_rng(seed), {}
    for cond, readings in photo.items():
        for k in range(copies):
            x = v2.FEATURES[HEAD](readings).copy()
            found = readings.found & (np.abs(mesh[cond]).sum(axis=1) > 0)
            n = int(found.sum())
            x[found, GEOMETRY] = turned_geometry(mesh[cond][found], rng.uniform(-yaw, yaw, n),
                                                 rng.uniform(-pitch, pitch, n))
            out[f"{cond}-turned{k}"] = Rows(x, found)
    return out


def crowd_figures(model, t, b, x: np.ndarray, px: np.ndarray) -> list[str]:
    """Per band of face height: label shares (balanced label | argmax p) and geometry's disgust - neutral."""
    logits = model.logits(x)
    probable = logits / t + b
    geometry = model._z(x)[:, GEOMETRY] @ model.lr.coef_.T[GEOMETRY]
    idx = [ed.EMOTIONS.index(e) for e in SHOWN]
    dis, neu = ed.EMOTIONS.index("disgust"), ed.EMOTIONS.index("neutral")
    lines = []
    for lo, hi in BANDS + ((0, 100000),):
        m = (px >= lo) & (px < hi)
        if not m.any():
            continue
        shares = [np.bincount(z[m].argmax(axis=1), minlength=7)[idx] / m.sum() for z in (logits, probable)]
        lines.append(f"{lo}-{hi if hi < 100000 else ''} px (n {m.sum()}): label " + " ".join(
            f"{e[:4]} {s:.2f}" for e, s in zip(SHOWN, shares[0])) + " | argmax p " + " ".join(
            f"{e[:4]} {s:.2f}" for e, s in zip(SHOWN, shares[1]))
            + f" | geometry dis-neu {(geometry[m, dis] - geometry[m, neu]).mean():+.2f}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--crowds", type=Path, default=None, help="a folder of real crowd photos (no labels needed)")
    ap.add_argument("--yaw", type=float, default=35.0, help="turns drawn within +- this many degrees")
    ap.add_argument("--pitch", type=float, default=25.0)
    ap.add_argument("--copies", type=int, default=1, help="turned copies of each photo-way condition")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    photo = dict(ed.read_conditions(args.labelled_dir, ed.DEFAULT_CACHE, workers=args.workers))
    mesh = ed.read_mesh(args.labelled_dir, workers=args.workers)
    base = {**{k: Rows(v2.FEATURES[HEAD](r), r.found) for k, r in photo.items()},
            **sp.serving_conditions(args.labelled_dir)}
    variants = {"v7's recipe": base,
                f"+ turned (yaw +-{args.yaw:g}, pitch +-{args.pitch:g}, x{args.copies})":
                    {**base, **turned_conditions(photo, mesh, args.yaw, args.pitch, args.copies)}}
    crowd = thi.crowd_inputs(args.crowds) if args.crowds else None
    evaluate = v2.EVAL + ("serve0", "serve1")
    print("shared photos, subject-disjoint 5-fold CV: macro recall 7/5, calibration error; by argmax p")
    crowd_lines = {}
    for label, readings in variants.items():
        report = v2.cross_validate(readings, y, subjects, head=HEAD, with_baselines=False, workers=args.workers,
                                   evaluate=evaluate)
        print(f"  {label}")
        for k in evaluate:
            r, found = report["conditions"][k][HEAD], readings[k].found
            probable = ed.recall_report(y, np.where(found, report["_oof_probs"][k].argmax(axis=1), -1))
            print(f"    {k:7s} {r['macro_recall']:.3f}/{r['macro_recall_5']:.3f} cal "
                  f"{r['calibration']['max_abs_error']:.3f}  by argmax p {probable['macro_recall']:.3f}/"
                  f"{probable['macro_recall_5']:.3f}")
        if crowd is not None:
            x, rows = v2.stack(readings, list(readings), np.arange(len(y)), v2.FEATURES[HEAD])
            model = v2.make_head(HEAD).fit(x, y[rows])
            t, b = v2.final_calibration(report, y, readings)
            crowd_lines[label] = crowd_figures(model, t, b, crowd[0], np.asarray(crowd[1]["face_px"]))
    if crowd is not None:
        print(f"\ncrowd photos ({args.crowds}): {len(crowd[0])} faces read")
        for label, lines in crowd_lines.items():
            print(f"  {label}")
            for line in lines:
                print(f"    {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
