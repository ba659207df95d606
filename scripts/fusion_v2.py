"""The v2 fusion head: trained and validated on the shared photos and their venue-camera degradations.

Used by train_fusion_head.py (`--head v2`, the default) and eval_expressions.py. Inputs per face are
`vision.classifier.fusion2_features`: blendshapes, landmark geometry, the log-probabilities of both CNNs,
face-api's 256 pooled features and the crop's sharpness. Model: standardise, shrink face-api's pooled block
by FACEAPI_WEIGHT (a stronger L2 penalty on those 256 coefficients than on the rest), multinomial logistic
regression with balanced class weights (L2, C), then vector scaling (temperature + per-class bias) fitted
on out-of-fold logits pooled over every condition, so mean probabilities estimate shares at every face size.

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


class Head:
    """standardise -> weight face-api's block -> balanced logistic regression (scikit-learn)."""

    def __init__(self, c: float = C, faceapi_weight: float = FACEAPI_WEIGHT):
        self.c, self.w = c, faceapi_weight

    def fit(self, x, y):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(x)
        self.weights = np.ones(x.shape[1])
        self.weights[faceapi_block(x.shape[1])] = self.w
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


def fit_quality_scaling(logits, y, quality, steps=3000, lr=0.5):
    """Temperature T, per-class bias b and per-class quality slope q minimising the NLL of
    softmax(logits / T + b + quality * q): the class priors may drift with the face's sharpness."""
    t, b, q = 1.0, np.zeros(logits.shape[1]), np.zeros(logits.shape[1])
    onehot = np.eye(logits.shape[1])[y]
    qc = quality - quality.mean()
    for _ in range(steps):
        g = softmax(logits / t + b + qc[:, None] * q) - onehot
        b -= lr * g.mean(axis=0)
        q -= lr * (g * qc[:, None]).mean(axis=0)
        t -= lr * (g * (-logits / t ** 2)).sum(axis=1).mean()
        t = max(t, 0.05)
    return t, b - quality.mean() * q, q


def _calibrated(logits_by_cond, y, found_by_cond, split, pool, quality_by_cond=None):
    """Nested calibration: fold k calibrated on the other folds' out-of-fold logits under `pool` (vector
    scaling, plus a per-class sharpness slope when `quality_by_cond` is given)."""
    probs = {c: np.zeros_like(l) for c, l in logits_by_cond.items()}
    for k, (_, te) in enumerate(split):
        other = np.concatenate([f[1] for j, f in enumerate(split) if j != k])
        lg = np.concatenate([logits_by_cond[c][other][found_by_cond[c][other]] for c in pool])
        yy = np.concatenate([y[other][found_by_cond[c][other]] for c in pool])
        if quality_by_cond is None:
            t, b = fit_vector_scaling(lg, yy)
            for c in logits_by_cond:
                probs[c][te] = softmax(logits_by_cond[c][te] / t + b)
        else:
            qq = np.concatenate([quality_by_cond[c][other][found_by_cond[c][other]] for c in pool])
            t, b, q = fit_quality_scaling(lg, yy, qq)
            for c in logits_by_cond:
                probs[c][te] = softmax(logits_by_cond[c][te] / t + b + quality_by_cond[c][te][:, None] * q)
    return probs


def calibration_error(probs, y, found) -> dict:
    share = np.bincount(y[found], minlength=7) / max(found.sum(), 1)
    mean = probs[found].mean(axis=0)
    return {"true_share": share.round(4).tolist(), "mean_probability": mean.round(4).tolist(),
            "max_abs_error": float(np.abs(mean - share).max())}


def cross_validate(readings: dict, y: np.ndarray, subjects, c: float = C, faceapi_weight: float = FACEAPI_WEIGHT,
                   train_conds=None, with_baselines: bool = True) -> dict:
    """Out-of-fold figures per condition (full, 48px, 32px) for fer's CNN, face-api's CNN, the v1 recipe
    (trained on the photos as they are, calibrated at full size: the old fusion) and the v2 head."""
    conds = list(readings)
    train_conds = train_conds or conds
    split = folds(y, subjects)
    found = {k: readings[k].found for k in conds}
    logits = {"fusion": {k: np.zeros((len(y), 7)) for k in conds}}
    if with_baselines:
        logits["fusion-v1"] = {k: np.zeros((len(y), 7)) for k in conds}
    for tr, te in split:
        x, rows = stack(readings, train_conds, tr, lambda r: r.v2_features())
        head = Head(c, faceapi_weight).fit(x, y[rows])
        for k in conds:
            logits["fusion"][k][te] = head.logits(readings[k].v2_features()[te])
        if with_baselines:
            x1, rows1 = stack(readings, ["full"], tr, lambda r: r.v1_features())
            s, m = fit_head(x1, y[rows1])
            for k in conds:
                logits["fusion-v1"][k][te] = m.decision_function(s.transform(readings[k].v1_features()[te]))
    quality = {k: readings[k].sharpness for k in conds}
    plain = _calibrated(logits["fusion"], y, found, split, conds)
    with_q = _calibrated(logits["fusion"], y, found, split, conds, quality)
    worst = {name: max(calibration_error(p[k], y, found[k])["max_abs_error"] for k in EVAL)
             for name, p in (("vector", plain), ("vector+sharpness", with_q))}
    mode = min(worst, key=worst.get)
    probs = {"fusion": with_q if mode == "vector+sharpness" else plain}
    if with_baselines:
        probs["fusion-v1"] = _calibrated(logits["fusion-v1"], y, found, split, ["full"])
    report = {"folds": FOLDS, "split": "subject-disjoint StratifiedGroupKFold; a photo's copies in its fold",
              "n": int(len(y)), "C": c, "faceapi_weight": faceapi_weight, "train_conditions": list(train_conds),
              "calibration_mode": mode, "worst_calibration_error_by_mode": worst, "conditions": {}}
    for k in EVAL:
        r = readings[k]
        methods = {}
        if with_baselines:
            methods["cnn"] = (r.fer, r.fer.argmax(axis=1))
            methods["faceapi"] = (r.faceapi, r.faceapi.argmax(axis=1))
            methods["fusion-v1"] = (probs["fusion-v1"][k], logits["fusion-v1"][k].argmax(axis=1))
        methods["fusion"] = (probs["fusion"][k], logits["fusion"][k].argmax(axis=1))
        report["conditions"][k] = {"no_face_rate": float(1 - r.found.mean())}
        for name, (p, label) in methods.items():
            pred = np.where(r.found, label, -1)
            report["conditions"][k][name] = {**ed.recall_report(y, pred),
                                             "calibration": calibration_error(p, y, r.found)}
    report["_oof_logits"] = logits["fusion"]
    return report


def final_calibration(report, y, readings):
    """(T, b, q or None) for the shipped head from all out-of-fold logits, pooled over conditions, in the
    mode cross-validation chose."""
    lg = np.concatenate([report["_oof_logits"][k][readings[k].found] for k in readings])
    yy = np.concatenate([y[readings[k].found] for k in readings])
    if report["calibration_mode"] == "vector":
        return (*fit_vector_scaling(lg, yy), None)
    qq = np.concatenate([readings[k].sharpness[readings[k].found] for k in readings])
    return fit_quality_scaling(lg, yy, qq)
