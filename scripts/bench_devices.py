"""Faces/s and per-stage milliseconds of the audience pipeline on each available ONNX device.

    python scripts/bench_devices.py ../shared/data/expressions [--seats 100] [--seconds 10] [--fps 2]
                                    [--classifier fusion --classifier fusion-v2 ...] [--rounds 1]

Builds the synthetic theatre (scripts/make_audience.py, `--seats` viewers) in a temporary folder, then for
each device ONNX Runtime can use here (cpu always, cuda when its provider is there) runs the audience
scene's frame loop on it and prints faces/s and the milliseconds per analysed frame spent in each stage:
face detection (the scene's detector), the landmarker (crops, MediaPipe; detection excluded), the expression
classifiers (the fusion heads: cutting each face's crops as its frame comes and reading a window's crops; on
the CPU one face per ONNX call, on a GPU a window's faces in one) and the rest (decode, describe, tracker). Each `--classifier`
(default: the default one) is run on every device, `--rounds` times interleaved, best kept, so classifiers
are compared in one run. Models are built before timing starts. MediaPipe runs on the CPU on every device;
only the ONNX models move.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _bench import Count, Stopwatch, make_audience, peak_rss_mb  # first: the project on the import path
from vision.capture import SourceSpec, open_source
from vision.labels import CLASSIFIERS
from vision.onnx import CUDA, available_providers
from vision.pipeline import FrameLoop, Settings, build_stages, model_files
from vision.quiet import native_stderr_to_devnull


class Timed:
    """Wraps one method of an object so each call's duration is added to `totals[label]`."""

    def __init__(self, obj, method: str, label: str, totals: dict):
        inner = getattr(obj, method)

        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                totals[label] += time.perf_counter() - t0
        setattr(obj, method, call)


def run(video: Path, device: str, fps: float, classifier: str) -> dict:
    settings = Settings(scene="audience", fps=fps, device=device, classifier=classifier)
    stages = build_stages(settings, "video", model_files(settings))
    totals: dict = defaultdict(float)
    Timed(stages.landmarker._detector, "detect", "detector", totals)
    Timed(stages.landmarker, "landmark", "landmarker", totals)
    for method in ("classify", "cut", "read_crops"):  # whole frames, or (fusion heads) crops cut, then read
        if hasattr(stages.classifier, method):
            Timed(stages.classifier, method, "classifiers", totals)
    count = Count()
    try:
        with open_source(SourceSpec(video.name, "video", str(video)), fps) as source:
            with Stopwatch() as loop:
                FrameLoop(stages, [count], settings.batch_frames).run(source)
        elapsed = loop.s
    finally:
        stages.close()
    per_frame = {k: 1000 * v / max(count.frames, 1) for k, v in totals.items()}
    per_frame["landmarker"] -= per_frame.get("detector", 0.0)  # the detector runs inside landmark()
    per_frame["decode+rest"] = 1000 * elapsed / max(count.frames, 1) - sum(per_frame.values())
    return {"frames": count.frames, "faces": count.faces, "faces_s": count.faces / elapsed, "ms": per_frame}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--seats", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=2.0, help="analysis rate")
    ap.add_argument("--classifier", action="append", choices=CLASSIFIERS, default=None,
                    help="classifier to run (repeat to compare several in one run; default: the default one)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the best of each is printed")
    args = ap.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if CUDA in available_providers() else [])
    classifiers = args.classifier or [Settings().classifier]
    with tempfile.TemporaryDirectory() as tmp, native_stderr_to_devnull():
        video = make_audience(args.labelled_dir, Path(tmp), args.seats, args.seconds)
        print(f"synthetic audience: {args.seats} seats, {args.seconds:g} s, analysed at {args.fps:g} fps; "
              f"providers: {', '.join(available_providers())}")
        best: dict = {}
        for _ in range(args.rounds):
            for device in devices:
                for name in classifiers:
                    r = run(video, device, args.fps, name)
                    if (device, name) not in best or r["faces_s"] > best[device, name]["faces_s"]:
                        best[device, name] = r
        for (device, name), r in best.items():
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["ms"].items())
            print(f"{device}, {name}: {r['faces_s']:.1f} faces/s ({r['faces']} faces in {r['frames']} frames); "
                  f"ms per frame: {stages}")
        print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
