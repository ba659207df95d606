"""Frame-loop benchmark: decode only, decode + landmarker only, and the full loop, on one video.

    python scripts/bench_frame_loop.py ../shared/data/video/WolfgangLanger_Pexels.mp4 [--cores 1] [--rounds 3]

Prints fps for each and the ratio full / (decode + landmarker), measured in this one run. Each stage set
is timed `--rounds` times, interleaved, and the best round is kept (machines are noisy). `--cores 1` pins
the process to one core first (MediaPipe's own threads included), as the target is stated for one core.
Models are built before timing starts; timing covers decoding and every stage.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vision.capture import SourceSpec, open_source  # noqa: E402
from vision.pipeline import Settings, build_stages, frame_loop, model_files  # noqa: E402
from vision.quiet import native_stderr_to_devnull  # noqa: E402


class _Count:
    def __init__(self):
        self.frames = self.faces = 0

    def write(self, obs):
        self.frames += 1
        self.faces += len(obs)  # an Observation, or MediaPipe's list of faces


def timed(spec, stages_factory):
    closers: list = []
    stages = stages_factory(closers)
    sink = _Count()
    src = open_source(spec)
    try:
        t0 = time.perf_counter()
        if stages is None:
            for _ in src:
                sink.frames += 1
        else:
            frame_loop(src, stages, [sink])
        dt = time.perf_counter() - t0
    finally:
        src.close()
        for c in closers:
            c.close()
    return sink.frames / dt, sink


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--cores", type=int, default=1, help="pin to this many cores (0 = no pinning)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--classifier", default="fusion", choices=("fusion", "cnn"))
    args = ap.parse_args(argv)
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.cores]))
    spec = SourceSpec(Path(args.video).name, "video", args.video)
    settings = Settings(classifier=args.classifier)
    models = model_files(settings)

    def decode_only(closers):
        return None

    def landmarker_only(closers):
        """MediaPipe alone, as a user of its Python API would call it: BGR->RGB, mp.Image, detect_for_video."""
        import cv2
        import mediapipe as mp
        from vision.landmarker import Landmarker, LandmarkerOptions

        lm = Landmarker(LandmarkerOptions(models["face_landmarker"].path, mode="video"))
        closers.append(lm)
        task = lm._task

        def detect(frame, _):
            rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
            result = task.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb),
                                           int(frame.t * 1000))
            return result.face_landmarks
        return [detect]

    def full(closers):
        return build_stages(settings, "video", models, closers)[0]

    best = {"decode": 0.0, "decode+landmarker": 0.0, "full loop": 0.0}
    faces = 0
    with native_stderr_to_devnull():
        for _ in range(args.rounds):
            for name, factory in (("decode", decode_only), ("decode+landmarker", landmarker_only), ("full loop", full)):
                fps, sink = timed(spec, factory)
                best[name] = max(best[name], fps)
                faces = max(faces, sink.faces)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"video: {args.video}  cores: {cores}  classifier: {args.classifier}  faces seen: {faces}  "
          f"best of {args.rounds} rounds")
    for name, fps in best.items():
        print(f"  {name:18s} {fps:8.1f} fps  ({1000 / fps:6.2f} ms/frame)")
    ratio = best["full loop"] / best["decode+landmarker"]
    per_frame = 1000 / best["full loop"] - 1000 / best["decode+landmarker"]
    print(f"ratio full / (decode+landmarker): {ratio:.3f}   (target >= 0.90); "
          f"cost after the landmarker: {per_frame:.2f} ms/frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
