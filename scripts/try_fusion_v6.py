"""Try cheaper siblings of the v5 head against v2 and v5 in one run, in the same subject-disjoint folds (issue 12).

    python scripts/try_fusion_v6.py ../shared/data/expressions [--nested NAME] [--grid-c 0.0075,0.015,0.03]

v5 reads both CNNs on each crop and on its mirror image (about 2x v2's CNN work, over the 2 ms per face target).
Each variant here is v5's inputs (v2's inputs then fer's 128 penultimate features) with each CNN read on the
crop ("crop") or averaged over the crop and its mirror image ("mean"), at test time; some are trained on more
views than they are tested on (train-time mirror augmentation: the mirrored CNN readings of every photo as extra
rows, which costs nothing at run time). All use v5's recipe (C=0.015, face-api's and fer's blocks weighted
0.25), are retrained per outer fold on all five conditions and calibrated (vector scaling) on the other folds'
out-of-fold logits, exactly as `fusion_v2.cross_validate` does. Prints the issue's table (macro 7 / macro 5 /
per class / calibration at full size, 48 px and 32 px).

`--fear-offset NAME`: that variant's balanced decision with an offset added to the fear logit (the label only:
the calibrated probabilities are unchanged), the offset chosen per outer fold on the other folds' out-of-fold
logits (mean macro-7 recall over the five conditions, like v4's weight) from FEAR_OFFSETS; prints the table
and how often a photo of another class is then called fear.

`--nested NAME`: that variant with C and fer's weight chosen inside each outer training fold by a
subject-disjoint 4-fold inner CV (mean macro-7 recall over the five conditions): the outer figures carry no
choice made on them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402

#: name -> (test view (fer, face-api), extra training views, fer features?): a view is "crop", "mirror" or "mean".
VARIANTS = {
    "v5": (("mean", "mean"), (), True),
    "faflip": (("crop", "mean"), (), True),
    "ferflip": (("mean", "crop"), (), True),
    "v2+ferf": (("crop", "crop"), (), True),
    "v2+ferf aug": (("crop", "crop"), (("mirror", "mirror"),), True),
    "faflip aug": (("crop", "mean"), (("mirror", "mean"),), True),
    "v5 aug": (("mean", "mean"), (("crop", "crop"), ("mirror", "mirror")), True),
}


FEAR_OFFSETS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
FEAR = 2  # vision.labels.EMOTIONS.index("fear")


def with_fear_offset(logits: dict, y, found, split, offsets=FEAR_OFFSETS) -> tuple[dict, list[float]]:
    """Out-of-fold logits with `d` added to fear's, `d` chosen per fold on the other folds (macro-7 recall)."""
    import try_fusion_v5

    shift = np.eye(7)[FEAR]
    out, chosen = {k: np.zeros_like(v) for k, v in logits.items()}, []
    for f, (_, te) in enumerate(split):
        rows = np.concatenate([s[1] for j, s in enumerate(split) if j != f])
        d = max(offsets, key=lambda d: try_fusion_v5.macro_score({k: v + d * shift for k, v in logits.items()},
                                                                 y, found, rows))
        chosen.append(d)
        for k in logits:
            out[k][te] = logits[k][te] + d * shift
    return out, chosen


def view_features(r: ed.Readings, fer_view: str, fa_view: str, fer_features: bool = True) -> np.ndarray:
    """v5-form inputs with fer (its probabilities and penultimate features) and face-api (its probabilities and
    pooled features) each read on the crop, its mirror image, or the mean of the two."""
    from vision.classifier import fusion2_features

    def pick(a, b, view):
        return a if view == "crop" else b if view == "mirror" else (a + b) / 2

    ok = r.found[:, None]
    fer = pick(r.fer, r.fer_flip, fer_view)
    fer_f = pick(r.fer_features, r.fer_features_flip, fer_view)
    fa = pick(r.faceapi, r.faceapi_flip, fa_view)
    fa_f = pick(r.faceapi_features, r.faceapi_features_flip, fa_view)
    x = fusion2_features(np.where(ok, fer, 1.0), np.where(ok, fa, 1.0), fa_f, r.sharpness, r.blendshapes,
                         r.geometry)
    return np.concatenate([x, fer_f], axis=1).astype(np.float32) if fer_features else x


def fit_variant(readings, y, tr, variant, c, fer_weight):
    """The variant's head fitted on photos `tr` (every condition, each training view)."""
    import fusion_v2 as v2

    test_view, extra, with_fer = VARIANTS[variant]
    xs, ys = [], []
    for view in (test_view, *extra):
        x, idx = v2.stack(readings, list(readings), tr, lambda r, v=view: view_features(r, *v, with_fer))
        xs.append(x)
        ys.append(y[idx])
    return v2.Head(c, v2.FACEAPI_WEIGHT, fer_weight if with_fer else None).fit(np.concatenate(xs),
                                                                              np.concatenate(ys))


def variant_logits(readings, y, tr, te, variant, c, fer_weight) -> dict:
    test_view, _, with_fer = VARIANTS[variant]
    model = fit_variant(readings, y, tr, variant, c, fer_weight)
    return {k: model.logits(view_features(r, *test_view, with_fer)[te]) for k, r in readings.items()}


def table(logits: dict, y, readings, split) -> dict:
    import fusion_v2 as v2

    conds = list(readings)
    found = {k: readings[k].found for k in conds}
    report = {"conditions": {k: {} for k in ed.EVAL_SIZES}}
    for h, lg in logits.items():
        probs = v2._calibrated(lg, y, found, split, conds)
        for k in ed.EVAL_SIZES:
            pred = np.where(found[k], lg[k].argmax(axis=1), -1)
            report["conditions"][k][h] = {**ed.recall_report(y, pred),
                                          "calibration": v2.calibration_error(probs[k], y, found[k])}
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--cache", type=Path, default=ed.DEFAULT_CACHE)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    ap.add_argument("--nested", default=None, help="a VARIANTS name: choose its C and fer weight by inner CV")
    ap.add_argument("--fear-offset", default=None, help="a VARIANTS name: its decision with a fear-logit offset")
    ap.add_argument("--grid-c", default="0.0075,0.015,0.03")
    ap.add_argument("--grid-fer", default="0.25,0.5")
    args = ap.parse_args(argv)
    import fusion_v2 as v2
    from train_fusion_head import print_table

    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    readings = ed.read_conditions(args.labelled_dir, args.cache, workers=1)
    split = v2.folds(y, subjects)
    conds = list(readings)
    logits = {}
    # the references, retrained in the same folds: v2 (the default) with its own recipe
    logits["v2 (default)"] = {k: np.zeros((len(y), 7)) for k in conds}
    for tr, te in split:
        for k, lg in v2._fold_logits(readings, y, tr, te, "fusion", conds, v2.C, v2.FACEAPI_WEIGHT).items():
            logits["v2 (default)"][k][te] = lg
    single = args.nested or args.fear_offset
    names = [single] if single else args.variants.split(",")
    if single and "v5" not in names:
        names = ["v5", *names]
    for name in names:
        logits[name] = {k: np.zeros((len(y), 7)) for k in conds}
        for tr, te in split:
            for k, lg in variant_logits(readings, y, tr, te, name, v2.C_V5, v2.FER_WEIGHT).items():
                logits[name][k][te] = lg
        print(f"fitted {name}", flush=True)
    if args.nested:
        grid = [(float(c), float(w)) for c in args.grid_c.split(",") for w in args.grid_fer.split(",")]
        nested_name = f"{args.nested} nested"
        logits[nested_name], chosen = nested(readings, y, np.array(subjects), split, args.nested, grid)
        print("chosen (C, fer weight) per outer fold:", chosen)
    if args.fear_offset:
        found = {k: readings[k].found for k in conds}
        adjusted, chosen = with_fear_offset(logits[args.fear_offset], y, found, split)
        # the label moves, the calibrated probabilities stay those of the head without the offset
        logits[f"{args.fear_offset} +fear"] = adjusted
        print("fear offset chosen per outer fold:", chosen)
        for name in (args.fear_offset, f"{args.fear_offset} +fear"):
            for k in ed.EVAL_SIZES:
                pred = np.where(found[k], logits[name][k].argmax(axis=1), -1)
                other = (y != FEAR) & found[k]
                print(f"{name:14s} {k:5s} photos of other classes called fear: {(pred[other] == FEAR).mean():.4f} "
                      f"({int((pred[other] == FEAR).sum())} of {int(other.sum())}); fear photos called fear: "
                      f"{int((pred[y == FEAR] == FEAR).sum())} of {int((y == FEAR).sum())}")
    report = table(logits, y, readings, split)
    if args.fear_offset:  # probabilities: the head's own (an offset on the decision only)
        base = report["conditions"]
        for k in ed.EVAL_SIZES:
            base[k][f"{args.fear_offset} +fear"]["calibration"] = base[k][args.fear_offset]["calibration"]
    print_table(report)
    return 0


def nested(readings, y, subjects, split, variant, grid) -> tuple[dict, list]:
    from sklearn.model_selection import StratifiedGroupKFold

    import try_fusion_v5

    conds = list(readings)
    found = {k: readings[k].found for k in conds}
    out = {k: np.zeros((len(y), 7)) for k in conds}
    chosen = []
    for f, (tr, te) in enumerate(split):
        inner = list(StratifiedGroupKFold(4, shuffle=True, random_state=1).split(tr, y[tr], subjects[tr]))
        scores = {}
        for c, w in grid:
            oof = {k: np.zeros((len(y), 7)) for k in conds}
            for itr, ite in inner:
                for k, lg in variant_logits(readings, y, tr[itr], tr[ite], variant, c, w).items():
                    oof[k][tr[ite]] = lg
            scores[(c, w)] = try_fusion_v5.macro_score(oof, y, found, tr)
        best = max(scores, key=scores.get)
        chosen.append(best)
        print(f"outer fold {f}: " + ", ".join(f"C={c:g} fer={w:g}: {s:.4f}" for (c, w), s in scores.items())
              + f" -> {best}", flush=True)
        for k, lg in variant_logits(readings, y, tr, te, variant, *best).items():
            out[k][te] = lg
    return out, chosen


if __name__ == "__main__":
    raise SystemExit(main())
