"""Evaluate the shipped expression pipeline on a labelled photo folder.

    python scripts/eval_expressions.py ../shared/data/expressions [--classifier fusion|cnn] [--limit N]

The folder holds labels.csv (image, emotion) and the photos (under images/ or beside the CSV). Every photo
goes through the same stages `audience analyze` uses on still images (MediaPipe in image mode with a black
border, then the classifier); a photo with no face found counts as wrong. Prints accuracy, macro recall,
per-class recall and the no-face rate, overall and per kind of photo (web portraits, small movie crops).
Note: the fusion head was trained on ../shared/data/expressions, so on that folder this measures fit, not
generalisation: its card reports subject-disjoint cross-validated figures (scripts/train_fusion_head.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402

from vision.capture import SourceSpec  # noqa: E402
from vision.labels import EMOTIONS  # noqa: E402
from vision.pipeline import Settings, analyze_job  # noqa: E402
from vision.quiet import native_stderr_to_devnull  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--classifier", default="fusion", choices=("fusion", "cnn"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    rows = ed.read_labels(args.labelled_dir)[: args.limit]
    specs = [SourceSpec(p.name, "image", str(p), in_folder=True) for p, _ in rows]
    with native_stderr_to_devnull():
        results = analyze_job(specs, Settings(classifier=args.classifier, max_faces=1))
    pred = np.array([EMOTIONS.index(cols["emotion"][0]) if len(cols["emotion"]) else -1 for cols, _ in results])
    truth = np.array([y for _, y in rows])
    kinds = np.array([ed.kind_of(p.name) for p, _ in rows])
    report = {"classifier": args.classifier, "all": ed.recall_report(truth, pred)}
    for kind in ("web", "movie"):
        if (kinds == kind).any():
            report[kind] = ed.recall_report(truth[kinds == kind], pred[kinds == kind])
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for part, r in report.items():
        if part == "classifier":
            continue
        print(f"{args.classifier} on {part} photos (n={r['n']}): accuracy {r['accuracy']:.3f}, macro recall "
              f"{r['macro_recall']:.3f}, no face {r['no_face_rate']:.3f}")
        print("   per class: " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_class_recall"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
