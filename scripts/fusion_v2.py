"""The v2-form fusion heads: trained and validated on the shared photos and their venue-camera degradations.

Used by train_fusion_head.py (`--head v2`, the default, or `v3`) and eval_expressions.py. Inputs per face are
`vision.classifier.fusion2_features`: blendshapes, landmark geometry, the log-probabilities of both CNNs,
face-api's 256 pooled features and the crop's sharpness; the v2 head (the default "fusion") takes each CNN's
outputs on the crop, the v3 head ("fusion-v3") those averaged over the crop and its mirror image, the v5 head
("fusion-v5") v3's inputs then fer's 128 penultimate features (flip-averaged too), a block weighted like face-api's,
the v6 head ("fusion-v6") v5's inputs with fer (probabilities and penultimate features) read on the crop alone.
Model: standardise, shrink face-api's pooled block
by FACEAPI_WEIGHT (a stronger L2 penalty on those 256 coefficients than on the rest), multinomial logistic
regression with balanced class weights (L2, C), then vector scaling (temperature + per-class bias) fitted
on out-of-fold logits pooled over every condition, so mean probabilities estimate shares at every face size
(a per-class sharpness slope in the calibration was tried for v2 and lost: models/fusion_head_v2.md).

Validation: StratifiedGroupKFold over the person in the file name; every degraded copy of a photo is in its
photo's fold (the copies are rows of the same photo index). Calibration is nested (fold k's probabilities
use a temperature and bias fitted on the other folds' out-of-fold logits).
"""
from __future__ import annotations

import numpy as np

import expression_data as ed
from train_fusion_head import FOLDS, fit_head, fit_vector_scaling, softmax

C = 0.03
FACEAPI_WEIGHT = 0.25
N_BLOCK = 256
EVAL = tuple(ed.EVAL_SIZES)  # full, 48px, 32px


def faceapi_block(n_features: int) -> slice:
    """Columns of face-api's pooled features in fusion2_features (just before the last, sharpness)."""
    return slice(n_features - 1 - N_BLOCK, n_features - 1)


def fer_block(n_features: int) -> slice:
    """Columns of fer's penultimate features in the v5 inputs (the last FER_BLOCK columns)."""
    return slice(n_features - FER_BLOCK, n_features)


FER_BLOCK = 128


class Head:
    """standardise -> weight face-api's block (and, `fer_weight`, fer's penultimate block at the end of the v5
    inputs) -> balanced logistic regression (scikit-learn)."""

    def __init__(self, c: float = C, faceapi_weight: float = FACEAPI_WEIGHT, fer_weight: float | None = None,
                 dropped: tuple[slice, ...] = ()):
        """`dropped`: blocks of input columns left out (weighted 0: no coefficient; scripts/try_head_inputs.py)."""
        self.c, self.w, self.w_fer, self.dropped = c, faceapi_weight, fer_weight, dropped

    def fit(self, x, y):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(x)
        self.weights = np.ones(x.shape[1])
        n = x.shape[1] - (FER_BLOCK if self.w_fer is not None else 0)
        self.weights[faceapi_block(n)] = self.w
        if self.w_fer is not None:
            self.weights[fer_block(x.shape[1])] = self.w_fer
        for block in self.dropped:
            self.weights[block] = 0.0
        self.lr = LogisticRegression(C=self.c, class_weight="balanced", max_iter=3000).fit(self._z(x), y)
        return self

    def _z(self, x):
        return self.scaler.transform(x) * self.weights

    def logits(self, x):
        return self.lr.decision_function(self._z(x))

    def export(self):
        """(mean, scale, W, B) for the ONNX graph: (x - mean) / scale @ W + B."""
        scale = self.scaler.scale_ / np.where(self.weights > 0, self.weights, 1.0)
        return self.scaler.mean_, scale, self.lr.coef_.T * (self.weights > 0)[:, None], self.lr.intercept_


def folds(labels, subjects):
    from sklearn.model_selection import StratifiedGroupKFold

    return list(StratifiedGroupKFold(FOLDS, shuffle=True, random_state=0).split(
        np.zeros(len(labels)), labels, np.asarray(subjects)))


def stack(readings: dict, conds, idx, features):
    """Rows of photos `idx` under each condition in `conds` where a face was found: (x, photo index)."""
    xs, rows = [], []
    for c in conds:
        r = readings[c]
        keep = idx[r.found[idx]]
        xs.append(features(r)[keep])
        rows.append(keep)
    return np.concatenate(xs), np.concatenate(rows)


def _calibrated(logits_by_cond, y, found_by_cond, split, pool):
    """Nested calibration: fold k calibrated (vector scaling) on the other folds' out-of-fold logits under
    `pool`."""
    probs = {c: np.zeros_like(lg) for c, lg in logits_by_cond.items()}
    for k, (_, te) in enumerate(split):
        other = np.concatenate([f[1] for j, f in enumerate(split) if j != k])
        lg = np.concatenate([logits_by_cond[c][other][found_by_cond[c][other]] for c in pool])
        yy = np.concatenate([y[other][found_by_cond[c][other]] for c in pool])
        t, b = fit_vector_scaling(lg, yy)
        for c in logits_by_cond:
            probs[c][te] = softmax(logits_by_cond[c][te] / t + b)
    return probs


def calibration_error(probs, y, found) -> dict:
    share = np.bincount(y[found], minlength=7) / max(found.sum(), 1)
    mean = probs[found].mean(axis=0)
    return {"true_share": share.round(4).tolist(), "mean_probability": mean.round(4).tolist(),
            "max_abs_error": float(np.abs(mean - share).max())}


#: The heads of this form: name -> how a photo's readings become its inputs (expression_data.Readings).
#: "fusion" (v2, the default until v6; `--classifier fusion-v2`) reads both CNNs on the crop; "fusion-v3" on the crop and its mirror image.
#: "fusion-v5" is v3 plus fer's 128 penultimate features (flip-averaged too), that block weighted by FER_WEIGHT.
FEATURES = {"fusion": lambda r: r.v2_features(), "fusion-v3": lambda r: r.v3_features(),
            "fusion-v5": lambda r: r.v5_features(flip=True),
            "fusion-v6": lambda r: r.v5_features(flip=True, fer_flip=False)}
#: The v5 head's C and fer block weight: chosen by nested CV (`scripts/try_fusion_v5.py --nested`: an inner
#: 4-fold CV inside each outer training fold picked C=0.015 in 5 of 5 folds and fer weight 0.25 in 4 of 5).
C_V5, FER_WEIGHT = 0.015, 0.25
#: "fusion-v6": v5's inputs with only face-api flip-averaged (fer and its features on the crop alone), v5's
#: recipe (C, fer weight); `scripts/try_fusion_v6.py --nested faflip` checks them by nested CV.
C_V6, FER_WEIGHT_V6 = C_V5, FER_WEIGHT
#: The heads with fer's penultimate block: (C, that block's weight).
FER_HEADS = {"fusion-v5": (C_V5, FER_WEIGHT), "fusion-v6": (C_V6, FER_WEIGHT_V6)}


def make_head(head: str, c: float | None = None, faceapi_weight: float = FACEAPI_WEIGHT,
              dropped: tuple[slice, ...] = ()) -> "Head":
    """An unfitted head of the form `head` (a FEATURES name); `c` None: the form's own (C, or FER_HEADS')."""
    if head in FER_HEADS:
        own_c, fer_weight = FER_HEADS[head]
        return Head(own_c if c is None else c, faceapi_weight, fer_weight, dropped)
    return Head(C if c is None else c, faceapi_weight, dropped=dropped)


def _fold_logits(readings, y, tr, te, head, train_conds, c, faceapi_weight, dropped=()) -> dict:
    """Validation logits of fold `te` under every condition, of `head` trained on folds `tr`."""
    if head == "fusion-v1":  # the first recipe: trained on the photos as they are
        x, rows = stack(readings, ["full"], tr, lambda r: r.v1_features())
        s, m = fit_head(x, y[rows])
        return {k: m.decision_function(s.transform(r.v1_features()[te])) for k, r in readings.items()}
    x, rows = stack(readings, train_conds, tr, FEATURES[head])
    model = make_head(head, None if head in FER_HEADS else c, faceapi_weight, dropped).fit(x, y[rows])
    return {k: model.logits(FEATURES[head](r)[te]) for k, r in readings.items()}


#: The weights of the tuned face-api's log-probabilities in the v4 head, chosen on out-of-fold readings.
TUNED_WEIGHTS = (0.125, 0.25, 0.5, 1.0, 2.0)


def tuned_weight(v2_logits: dict, tuned: dict, y: np.ndarray, found: dict, rows: np.ndarray) -> float:
    """The weight w of the tuned face-api's log-probabilities in `v2 logits + w * log p_tuned` with the best
    mean macro recall over the conditions on the photos `rows` (other folds' out-of-fold readings)."""
    def score(w):
        total = 0.0
        for k in v2_logits:
            keep = rows[found[k][rows]]
            pred = (v2_logits[k][keep] + w * tuned[k][keep]).argmax(axis=1)
            total += np.mean([(pred[y[keep] == c] == c).mean() for c in np.unique(y[keep])])
        return total
    return max(TUNED_WEIGHTS, key=score)


def v4_logits(v2_logits: dict, tuned: dict, y, found, split) -> tuple[dict, list[float]]:
    """The v4 head's out-of-fold logits: the v2 head's plus w_k times the tuned face-api's log-probabilities
    (both trained without fold k), w_k chosen on the other folds' out-of-fold readings."""
    out, chosen = {k: np.zeros_like(v) for k, v in v2_logits.items()}, []
    for k, (_, te) in enumerate(split):
        other = np.concatenate([f[1] for j, f in enumerate(split) if j != k])
        w = tuned_weight(v2_logits, tuned, y, found, other)
        chosen.append(w)
        for c in out:
            out[c][te] = v2_logits[c][te] + w * tuned[c][te]
    return out, chosen


def cross_validate(readings: dict, y: np.ndarray, subjects, c: float = C, faceapi_weight: float = FACEAPI_WEIGHT,
                   train_conds=None, with_baselines: bool = True, head: str = "fusion", workers: int = 1,
                   tuned: dict | None = None, dropped: tuple[slice, ...] = (), evaluate=EVAL) -> dict:
    """Out-of-fold figures per condition (full, 48px, 32px) of `head` and, `with_baselines`, of fer's CNN,
    face-api's CNN, the v1 recipe (trained on the photos as they are, calibrated at full size: the first
    fusion) and the other v2-form head (FEATURES), all retrained in the same folds (`workers` fits at once).
    `tuned` (condition -> [N,7] out-of-fold log-probabilities of the fine-tuned face-api, tune_faceapi.py
    cv, the same folds) adds "faceapi-tuned" alone and the v4 head ("fusion-v4": v2 + w * tuned). `dropped`:
    blocks of `head`'s input columns left out (Head). Every condition of `readings` gets out-of-fold logits
    (`_oof_logits`) and probabilities (`_oof_probs`), calibrated on `train_conds` (default: all of them); the
    report's figures are those of the conditions `evaluate` (with_baselines: photo-way conditions only)."""
    conds = list(readings)
    train_conds = train_conds or conds
    split = folds(y, subjects)
    found = {k: readings[k].found for k in conds}
    if head == "fusion-v4" and tuned is None:
        raise ValueError("the v4 head needs the tuned face-api's out-of-fold readings (tune_faceapi.py cv)")
    heads = list(FEATURES) if with_baselines else ["fusion" if head == "fusion-v4" else head]
    logits = {h: {k: np.zeros((len(y), 7)) for k in conds} for h in heads}
    if with_baselines:
        logits["fusion-v1"] = {k: np.zeros((len(y), 7)) for k in conds}
    from joblib import Parallel, delayed

    jobs = [(h, fold) for fold in range(len(split)) for h in list(logits)]
    fitted = Parallel(n_jobs=workers)(delayed(_fold_logits)(readings, y, split[f][0], split[f][1], h, train_conds,
                                                            c, faceapi_weight, dropped if h == head else ())
                                      for h, f in jobs)
    for (h, f), by_cond in zip(jobs, fitted):
        for k in conds:
            logits[h][k][split[f][1]] = by_cond[k]
    chosen = None
    if tuned is not None:
        logits["fusion-v4"], chosen = v4_logits(logits["fusion"], tuned, y, found, split)
        heads = heads + ["fusion-v4"]
    probs = {h: _calibrated(logits[h], y, found, split, train_conds) for h in heads}
    if with_baselines:
        probs["fusion-v1"] = _calibrated(logits["fusion-v1"], y, found, split, ["full"])
    report = {"folds": FOLDS, "split": "subject-disjoint StratifiedGroupKFold; a photo's copies in its fold",
              "n": int(len(y)), "head": head, "C": c, "faceapi_weight": faceapi_weight,
              "train_conditions": list(train_conds), "calibration_mode": "vector", "conditions": {}}
    for k in evaluate:
        r = readings[k]
        methods = {}
        if with_baselines:
            methods["cnn"] = (r.fer, r.fer.argmax(axis=1))
            methods["faceapi"] = (r.faceapi, r.faceapi.argmax(axis=1))
            methods["fusion-v1"] = (probs["fusion-v1"][k], logits["fusion-v1"][k].argmax(axis=1))
            if tuned is not None:
                methods["faceapi-tuned"] = (np.exp(tuned[k]), tuned[k].argmax(axis=1))
        for h in heads:
            methods[h] = (probs[h][k], logits[h][k].argmax(axis=1))
        report["conditions"][k] = {"no_face_rate": float(1 - r.found.mean())}
        for name, (p, label) in methods.items():
            pred = np.where(r.found, label, -1)
            report["conditions"][k][name] = {**ed.recall_report(y, pred),
                                             "calibration": calibration_error(p, y, r.found)}
    if chosen is not None:
        report["tuned_weight_per_fold"] = chosen
    report["_oof_logits"] = logits[head]
    report["_oof_probs"] = probs[head]
    report["_oof"] = logits
    return report


def without_arrays(report: dict) -> dict:
    """`cross_validate`'s report less its out-of-fold arrays (the keys starting with "_"): what is printed or
    written as JSON."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def final_calibration(report, y, readings):
    """(T, b) for the shipped head: vector scaling on all its out-of-fold logits, pooled over conditions."""
    lg = np.concatenate([report["_oof_logits"][k][readings[k].found] for k in readings])
    yy = np.concatenate([y[readings[k].found] for k in readings])
    return fit_vector_scaling(lg, yy)
