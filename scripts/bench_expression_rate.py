"""What `--expression-every SECONDS` costs: readings and curves against reading every frame, on the same videos.

    python scripts/bench_expression_rate.py [VIDEO ...] [--every 0.25,0.5,1] [--bucket 1]

For each video (default: the shared single-face clips WolfgangLanger_Pexels.mp4 and single_face.mp4) and each
rate, analyses the video with the expression read on every frame (the reference) and at most every S seconds
per track, on the same frames, and prints: the share of faces whose crop the CNNs read, the rows whose top expression
(`emotion`) agrees with the reference, the mean absolute difference of the 7 probabilities per row, and of
the curves (`--bucket` seconds: the 7 expression shares and valence) the mean and largest absolute
difference per bucket, beside how much the reference curve itself moves from bucket to bucket (mean
absolute step), for scale, and the frame-sampling noise: the reference curves from its even vs its odd
frames only. Boxes, ids, metrics, head pose and attention are read on every frame either way.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from _bench import ROOT  # first: the project on the import path
from vision.capture import SourceSpec
from vision.curves import BucketStats
from vision.labels import EMOTIONS
from vision.pipeline import Settings, build_stages, model_files
from vision.quiet import native_stderr_to_devnull
from vision.runner import run_job

SHARED = Path(os.environ.get("AUDIENCE_SHARED", ROOT.parent / "shared")) / "data" / "video"
PROBS = [f"p_{e}" for e in EMOTIONS]


class Counting:
    """The classifier, counting the faces whose crops it reads (as vision.readings calls it)."""

    def __init__(self, classifier):
        self.classifier, self.faces = classifier, 0
        if hasattr(classifier, "read_crops"):
            self.cut, self.read_crops = classifier.cut, self._read_crops
            self.from_crop_readings = classifier.from_crop_readings

    def classify(self, images, observations):
        self.faces += sum(len(o) for o in observations)
        return self.classifier.classify(images, observations)

    def _read_crops(self, parts):
        self.faces += sum(len(p) for p in parts)
        return self.classifier.read_crops(parts)


def analyse(video: Path, every_s: float) -> tuple[dict, int, object]:
    settings = Settings(expression_every_s=every_s)
    spec = SourceSpec(video.name, "video", str(video))
    with native_stderr_to_devnull():
        stages = build_stages(settings, "video", model_files(settings))
        stages.classifier = counting = Counting(stages.classifier)
        try:
            (cols, report), = run_job([spec], settings, stages=stages)
        finally:
            stages.close()
    return cols, counting.faces, report


def curves(cols: dict, report, bucket: float, half: int | None = None) -> np.ndarray:
    """The per-bucket curves (7 probabilities and valence); `half` 0 or 1: from the even or odd analysed frames only."""
    frames = np.asarray(report.analysed_t, np.float64)
    if half is not None:
        keep = np.searchsorted(frames, np.asarray(cols["t"], np.float64)) % 2 == half
        cols, frames = {k: np.asarray(v)[keep] for k, v in cols.items()}, frames[half::2]
    stats = BucketStats(bucket, 0.0, Settings().min_quality)
    stats.add_rows(cols)
    stats.add_frames(frames)
    c = stats.curves()
    return np.stack([np.asarray(c[k], np.float64) for k in PROBS + ["valence"]], axis=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path,
                    default=[SHARED / "WolfgangLanger_Pexels.mp4", SHARED / "single_face.mp4"])
    ap.add_argument("--every", default="0.25,0.5,1", help="rates to compare, seconds, comma-separated")
    ap.add_argument("--bucket", type=float, default=1.0, help="curve bucket, seconds (default 1, as analyze)")
    args = ap.parse_args(argv)
    rates = [float(v) for v in args.every.split(",")]
    for video in args.videos:
        ref, ref_faces, ref_report = analyse(video, 0.0)
        ref_curves = curves(ref, ref_report, args.bucket)
        step = np.nanmean(np.abs(np.diff(ref_curves, axis=0)))
        print(f"{video.name}: {len(ref['t'])} faces in {ref_report.frames_analysed} frames; reference curves move "
              f"{step:.4f} per {args.bucket:g} s bucket on average (7 shares and valence)")
        halves = np.abs(curves(ref, ref_report, args.bucket, 0) - curves(ref, ref_report, args.bucket, 1))
        print(f"  frame-sampling noise: the reference's curves from its even vs its odd frames differ by "
              f"{np.nanmean(halves):.4f} on average, {np.nanmax(halves):.4f} at most")
        for every in rates:
            cols, faces, report = analyse(video, every)
            if not np.array_equal(cols["track_id"], ref["track_id"]) or not np.array_equal(cols["t"], ref["t"]):
                raise SystemExit("rows differ from the reference: the rate must change expressions only")
            readable = np.isfinite(ref[PROBS[0]])
            agree = np.mean(cols["emotion"][readable] == ref["emotion"][readable]) if readable.any() else float("nan")
            prob_diff = np.nanmean(np.abs(np.stack([cols[p] - ref[p] for p in PROBS], axis=1)))
            d = np.abs(curves(cols, report, args.bucket) - ref_curves)
            print(f"  every {every:g} s: {faces / max(ref_faces, 1):6.1%} of crops read, top expression "
                  f"agrees on {agree:6.1%} of rows, probabilities differ by {prob_diff:.4f} per row; curves differ by "
                  f"{np.nanmean(d):.4f} on average, {np.nanmax(d):.4f} at most")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
