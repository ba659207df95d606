"""Train/serve skew of the default head on small faces: the shared photos' venue copies read as an audience is read.

    python scripts/try_serving_path.py ../shared/data/expressions [--crowds ../shared/data/crowds/images]
                                       [--copies 2] [--workers 2]

The heads are trained on readings taken the photo way (`expression_data`: the MediaPipe landmarker on the whole
photo, a venue copy shrunk to a 24-64 px face and then restored to the photo's size). An audience is read
another way: a detector box in a wide frame, FaceMesh on that box, the CNN crops cut from the small face itself.
`scripts/serving_path.py` renders each photo's venue copy (`degrade.venue`'s recipe, not restored: the face
stays 24-64 px) in a dim frame three times its size and reads it through the audience scene
(`vision.pipeline.analyze_job`, the v6-form head's inputs kept in memory, numbers only). This script prints, from subject-disjoint 5-fold CV:

0. the share of serving-path copies in which the front end read a face, by the face's width in the copy;
1. v6's recipe as shipped (trained on the photo-way conditions) and the same recipe with the serving-path copies
   added to its training folds: macro recall over 7 and 5 classes, the calibration error (max over classes of
   |mean probability - share|) and the mean-probability shares of disgust and neutral, per condition, the
   serving-path copies included;
2. for the variant trained with the serving-path copies (v7's recipe), per band of the face's width in the copy
   (both copies pooled): macro recall 7 / 5 classes by the probabilities' argmax (the audience scene's label),
   the mean negative log-likelihood of the true class and the calibration error; then the same after a per-band
   bias on the log-probabilities (`band_biases`: 7 numbers a band, fitted by maximum likelihood on the other
   folds' copies, `--bias-l2` shrinking them), the test of a per-size calibration for small faces;
3. for the same variant, the mean valence per true class and its correlation with the truth's valence (+1 happy,
   -1 anger/disgust/fear/sadness, 0 surprise/neutral), at full size and on the serving path, as the project
   defines it (`vision.features.valence`: happiness minus the sum of the negatives) and as FaceReader does
   (`valence_max`: happiness minus the largest negative);
4. with `--crowds` (real crowd photos without labels, e.g. WIDER FACE: measured, never trained or tuned on):
   each variant retrained on all the photos, the share of crowd faces whose label is disgust / neutral per band
   of face height, by the shipped label (the balanced decision) and by the calibrated probabilities' argmax.

The serving-path readings are cached in `--cache` (keyed on the photos, the models and this recipe).
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

HEAD = "fusion-v6"
BANDS = (24, 32, 40, 48, 65)  # face width in the copy, px: the bands of the per-size figures


def band_biases(logp: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """[7] the bias b maximising the mean log-likelihood of softmax(logp + b) on rows with labels `y`, less
    `l2` / n * |b|^2 (scipy's L-BFGS on the exact gradient)."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    onehot, n = np.eye(logp.shape[1])[y], len(y)

    def loss(b):
        z = log_softmax(logp + b, axis=1)
        return (-(z * onehot).sum() / n + l2 / n * b @ b,
                (np.exp(z) - onehot).mean(axis=0) + 2 * l2 / n * b)

    return minimize(loss, np.zeros(logp.shape[1]), jac=True, method="L-BFGS-B").x


def valence_max(probs: np.ndarray) -> np.ndarray:
    """[N,7] -> [N] valence as FaceReader defines it: P(happiness) minus the largest of the negative expressions."""
    p = np.asarray(probs, np.float64)
    return p[:, 3] - p[:, [0, 1, 2, 4]].max(axis=1)


def valence_by_class(probs: np.ndarray, y: np.ndarray, found: np.ndarray) -> dict:
    """definition -> (correlation with the truth's valence, [7] mean valence per true class), faces found."""
    from vision.features import valence

    truth = np.array([-1, -1, -1, 1, -1, 0, 0], float)[y[found]]
    out = {}
    for name, fn in (("sum (ours)", valence), ("max (FaceReader)", valence_max)):
        v = np.asarray(fn(probs[found]), np.float64)
        out[name] = (float(np.corrcoef(v, truth)[0, 1]), [float(v[y[found] == k].mean()) for k in range(7)])
    return out


def by_band(probs: list[np.ndarray], y: np.ndarray, found: list[np.ndarray], width: list[np.ndarray], split,
            l2: float) -> dict:
    """Per width band: (n, figures as read, figures after a per-band bias fitted on the other folds), figures =
    (macro recall 7, macro recall 5, mean NLL of the true class, calibration error), the copies pooled."""
    from scipy.special import log_softmax

    fold = np.zeros(len(y), int)
    for f, (_, test) in enumerate(split):
        fold[test] = f
    logp = np.log(np.clip(np.concatenate(probs), 1e-6, 1.0))
    yy, ok = np.tile(y, len(probs)), np.concatenate(found)
    folds, band = np.tile(fold, len(probs)), np.digitize(np.concatenate(width), BANDS) - 1
    shifted = logp.copy()
    for b in range(len(BANDS) - 1):
        for f in range(len(split)):
            train, test = ok & (band == b) & (folds != f), ok & (band == b) & (folds == f)
            shifted[test] = log_softmax(logp[test] + band_biases(logp[train], yy[train], l2), axis=1)

    def figures(z, rows):
        rep = ed.recall_report(yy[rows], z[rows].argmax(axis=1))
        nll = float(-z[rows, yy[rows]].mean())
        cal = v2.calibration_error(np.exp(z[rows]), yy[rows], np.ones(rows.sum(), bool))["max_abs_error"]
        return rep["macro_recall"], rep["macro_recall_5"], nll, cal

    return {(BANDS[b], BANDS[b + 1]): (int(rows.sum()), figures(logp, rows), figures(shifted, rows))
            for b in range(len(BANDS) - 1) for rows in [ok & (band == b)]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--crowds", type=Path, default=None, help="a folder of real crowd photos (no labels needed)")
    ap.add_argument("--copies", type=int, default=sp.COPIES, help="serving-path copies per photo")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=sp.DEFAULT_CACHE)
    ap.add_argument("--bias-l2", type=float, default=1.0, help="shrinkage of the per-band biases (section 2)")
    args = ap.parse_args(argv)
    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    readings = dict(ed.read_conditions(args.labelled_dir, ed.DEFAULT_CACHE, workers=args.workers))
    photo_way = list(readings)
    readings.update(sp.serving_conditions(args.labelled_dir, args.cache, args.copies))
    crowd = thi.crowd_inputs(args.crowds) if args.crowds else None
    serve = [readings[f"serve{k}"] for k in range(args.copies)]
    print("the front end on the serving-path copies: a face read, by the face's width in the copy")
    for lo, hi in ((0, 24), (24, 32), (32, 40), (40, 48), (48, 56), (56, 65)):
        found = np.concatenate([r.found[(r.face_width >= lo) & (r.face_width < hi)] for r in serve])
        if len(found):
            print(f"  {lo:2d}-{hi:2d} px: {found.mean():.3f} of {len(found)} copies")
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
        if label == "+ serving-path copies":
            serve_probs = [probs[f"serve{k}"] for k in range(args.copies)]
            bands = by_band(serve_probs, y, [r.found for r in serve], [r.face_width for r in serve],
                            v2.folds(y, subjects), args.bias_l2)
            valences = {k: valence_by_class(probs[k], y, readings[k].found)
                        for k in ["full"] + [f"serve{k}" for k in range(args.copies)]}
        if crowd is not None:
            x, rows = v2.stack(readings, train, np.arange(len(y)), v2.FEATURES[HEAD])
            model = v2.make_head(HEAD).fit(x, y[rows])
            t, b = v2.final_calibration(report, y, {k: readings[k] for k in train})
            crowd_logits.append((label, model.logits(crowd[0]), t, b))
    print("\nthe serving-path copies by face width (v7's recipe, out of fold): macro recall 7/5 by argmax p, NLL, "
          f"calibration error; then with a per-band bias fitted on the other folds (l2 {args.bias_l2:g})")
    for (lo, hi), (n, before, after) in bands.items():
        print(f"  {lo:2d}-{hi:2d} px (n {n:4d}): " + "  ->  ".join(
            "{:.3f}/{:.3f} NLL {:.4f} cal {:.3f}".format(*fig) for fig in (before, after)))
    print("\nvalence per true class (v7's recipe, out of fold), and its correlation with the truth's valence")
    for k, by_def in valences.items():
        for name, (corr, means) in by_def.items():
            print(f"  {k:7s} {name:17s} r {corr:.3f}  " + " ".join(
                f"{e[:4]} {m:+.2f}" for e, m in zip(ed.EMOTIONS, means)))
    if crowd is not None:
        print(f"\ncrowd photos ({args.crowds}): {len(crowd[0])} faces read; label disgust/neutral share per face height")
        for label, z, t, b in crowd_logits:
            thi.crowd_shares(f"{label}, label", z, crowd[1]["face_px"])
            thi.crowd_shares(f"{label}, argmax p", z / t + b, crowd[1]["face_px"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
