"""Frame-loop benchmark: decode only, decode + landmarker only, and the full loop, on one video.

    python scripts/bench_frame_loop.py ../shared/data/video/WolfgangLanger_Pexels.mp4 [--cores 1] [--rounds 3]

Prints fps for each and the ratio full / (decode + landmarker), measured in this one run:
- separate runs: each pipeline over the whole video, `--rounds` times interleaved, best round kept;
- a paired pass (the headline figure): both pipelines on every frame of one decode pass, alternating
  which goes first, so the noise of a shared machine hits both alike.
"decode + landmarker" is MediaPipe alone as its Python API is used: BGR->RGB, mp.Image, detect_for_video.
"full loop" is the project's FrameLoop with every stage and a counting sink.
`--whole` instead times the whole `audience analyze VIDEO --workers 1` command (start-up, scene choice,
model loading, conversions and output writing included) against decode + landmarker on the same clip,
`--rounds` times interleaved, best of each; `--repeat N` first makes a clip of VIDEO played N times (the
issue's 2-minute clip is WolfgangLanger_Pexels.mp4 with --repeat 8). `--expression-every S` times the loop
reading each face's crop at most every S seconds (vision.readings; 0: every frame; without it, the default
cadence, 0.1 s); with `--whole`, the command with that option is timed too, in the same rounds, beside the
command as it runs by default. `--against CHECKOUT`
times another checkout's command in the same rounds too (before and after in one run; with
`--expression-every`, that checkout's command with it too). `--whole` also
prints the ratios over CPU time (user + system of every thread), which other work on a shared machine
skews less than wall time. `--stages` adds one timed pass printing ms/frame of each stage after the landmarker.
`--faces-per-call K` also times the full loop with the CNNs reading K faces per ONNX call (0: a window's faces
in one call) beside the default (on the CPU, one face per call).
`--whole` also prints the CPU-time ratios against decode + landmarker with the project's own conversion of
MediaPipe's C result (vision.landmarker.ResultReader) beside the stock API's. `--conversion` only times the
two conversions on the same results. `--cores 1` pins the process (MediaPipe's own threads included) to one core
first, as the target is stated for one core. Models are built before timing starts.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2

from _bench import Count, Stopwatch, analyze, cores, read_frames, write_video  # first: the project on the import path
from vision.capture import SourceSpec, open_source
from vision.landmarker import Landmarker, LandmarkerOptions
from vision.labels import CLASSIFIERS
from vision.pipeline import FrameLoop, Settings, build_stages, model_files
from vision.quiet import native_stderr_to_devnull


class DecodeOnly:
    def push(self, frame):
        pass

    def flush(self):
        pass

    def close(self):
        pass


class MediaPipeOnly:
    def __init__(self, models):
        import mediapipe as mp

        self._mp = mp
        self._lm = Landmarker(LandmarkerOptions(models["face_landmarker"].path, mode="video"))

    def push(self, frame):
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        self._lm._task.detect_for_video(image, int(frame.t * 1000))

    def flush(self):
        pass

    def close(self):
        self._lm.close()


class MediaPipeFast(MediaPipeOnly):
    """decode + landmarker with the project's conversion of MediaPipe's C result (vision.landmarker.ResultReader)
    instead of the stock result objects: the floor of the command as it is built."""

    def push(self, frame):
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self._lm._reader is None:  # MediaPipe's structs are not the known ones: the command uses the stock API
            self._lm._task.detect_for_video(image, int(frame.t * 1000))
        else:
            self._lm._reader.detect(image, int(frame.t * 1000))


class Conversion(MediaPipeOnly):
    """Times, on each frame's one C result, the stock conversion (`FaceLandmarkerResult.from_ctypes` +
    `result_to_arrays`) against ResultReader's, CPU time, alternating which goes first."""

    def __init__(self, models):
        super().__init__(models)
        self.stock = self.fast = 0.0
        self.frames = self.faces = 0

    def _both(self, result_c):
        reader = self._lm._reader
        order = (reader.stock, reader.arrays) if self.frames % 2 else (reader.arrays, reader.stock)
        for convert in order:
            t0 = time.process_time()
            arrays = convert(result_c)
            dt = time.process_time() - t0
            self.stock, self.fast = (self.stock + dt, self.fast) if convert == reader.stock else (self.stock,
                                                                                                 self.fast + dt)
        self.frames += 1
        self.faces += len(arrays[0])

    def push(self, frame):
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        self._lm._reader.detect(image, int(frame.t * 1000), convert=self._both)


class TimedLoop(FrameLoop):
    """The FrameLoop with each stage after the landmarker timed (seconds summed over the run): boxes, the
    tracker and the crops as each frame comes; the expressions, describe and the sinks per window."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.times = dict.fromkeys(("to_observations", "tracker", "crops", "classifier", "describe", "sinks"), 0.0)

    def _add(self, names, marks):
        for k, a, b in zip(names, marks, marks[1:]):
            self.times[k] += b - a

    def push(self, frame):
        from vision.landmarker import to_observations
        from vision.seats import mask_excluded

        frame = mask_excluded(frame, self.stages.excluded)
        result = self.stages.landmarker.landmark(frame)
        t0 = time.perf_counter()
        [obs] = to_observations([frame], [result])
        t1 = time.perf_counter()
        obs = self.stages.tracker.update(obs)
        t2 = time.perf_counter()
        self._window.append(self.readings.take(self.stages.classifier, frame.image, obs))
        self._add(("to_observations", "tracker", "crops"), (t0, t1, t2, time.perf_counter()))
        if self.window_full():
            self.flush()

    def flush(self) -> None:
        from vision.describe import describe_window

        if not self._window:
            return
        t0 = time.perf_counter()
        observations = self.readings.read(self.stages.classifier, self.take_window())
        t1 = time.perf_counter()
        observations = describe_window(observations)
        t2 = time.perf_counter()
        for obs in observations:
            for sink in self.sinks:
                sink.write(obs)
        self._add(("classifier", "describe", "sinks"), (t0, t1, t2, time.perf_counter()))


class Full:
    def __init__(self, settings, models, timed: bool = False, faces_per_call: int | None = None):
        from vision.table import TableSink

        self.stages = build_stages(settings, "video", models)
        for cnn in (getattr(self.stages.classifier, "cnn", None), getattr(self.stages.classifier, "faceapi", None),
                    self.stages.classifier):
            if faces_per_call is not None and hasattr(cnn, "faces_per_call"):
                cnn.faces_per_call = faces_per_call  # how many faces the CNNs read per ONNX call (0: all)
        self.count = Count()
        sinks = [self.count, TableSink()] if timed else [self.count]  # timed: the table analyze keeps too
        self.loop = (TimedLoop if timed else FrameLoop)(self.stages, sinks, settings.batch_frames,
                                                        settings.expression_every_s)

    def push(self, frame):
        self.loop.push(frame)

    def flush(self):
        self.loop.flush()

    def close(self):
        self.stages.close()


def separate(spec, pipeline, cpu: list | None = None) -> float:
    """fps over wall time; appends fps over this process's CPU time (all its threads) to `cpu` if given."""
    src = open_source(spec)
    n = 0
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for frame in src:
            pipeline.push(frame)
            n += 1
        pipeline.flush()
        if cpu is not None:
            cpu.append(n / (time.process_time() - c0))
        return n / (time.perf_counter() - t0)
    finally:
        src.close()
        pipeline.close()


def paired(spec, raw, full) -> tuple[float, float, float, int]:
    """Returns (decode s, raw s, full s, frames) from one decode pass feeding both."""
    src = open_source(spec)
    decode = t_raw = t_full = 0.0
    n = 0
    try:
        it = iter(src)
        while True:
            t0 = time.perf_counter()
            frame = next(it, None)
            decode += time.perf_counter() - t0
            if frame is None:
                break
            for which in (("raw", "full") if n % 2 == 0 else ("full", "raw")):
                t0 = time.perf_counter()
                (raw if which == "raw" else full).push(frame)
                dt = time.perf_counter() - t0
                t_raw, t_full = (t_raw + dt, t_full) if which == "raw" else (t_raw, t_full + dt)
            n += 1
        t0 = time.perf_counter()
        full.flush()
        t_full += time.perf_counter() - t0
    finally:
        src.close()
        raw.close()
        full.close()
    return decode, t_raw, t_full, n


def repeated(video: str, times: int, folder: Path) -> str:
    """VIDEO played `times` times, re-encoded (mp4v) into folder."""
    frames, fps = read_frames(video)
    return write_video(folder / f"repeated{times}.mp4", frames * times, fps)


def whole_command(video: str, folder: Path, classifier: str, *options: str, cpu: list | None = None,
                  checkout: Path | None = None) -> float:
    """fps of `audience analyze VIDEO --workers 1` over its wall time, as a user runs it (this process's cores),
    of this checkout or another one; appends fps over the command's CPU time (user + system, all its
    threads) to `cpu` if given."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if checkout is None:
        elapsed, summary = analyze([video], folder / "out", "--workers", "1", "--classifier", classifier, *options)
    else:
        out = folder / "out-checkout"
        with Stopwatch() as sw:
            subprocess.run([sys.executable, "-m", "service.cli", "analyze", str(Path(video).resolve()), "--out",
                            str(out), "--quiet", "--workers", "1", "--classifier", classifier, *options], check=True,
                           cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)})
        elapsed, summary = sw.s, json.loads((out / "summary.json").read_text())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(summary["frames_analysed"] / (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
    return summary["frames_analysed"] / elapsed


def main_whole(args) -> int:
    import tempfile

    every = [] if args.expression_every is None else ["--expression-every", f"{args.expression_every:g}"]
    runs = [("whole", "whole", [], None)]  # (key, label, options, checkout) of each command timed
    if every:
        runs.append(("rated", f"with {' '.join(every)}", every, None))
    if args.against:
        runs.append(("other", str(args.against), [], args.against))
        if every:
            runs.append(("other_rated", f"{args.against} with {' '.join(every)}", every, args.against))
    with tempfile.TemporaryDirectory() as tmp:
        video = repeated(args.video, args.repeat, Path(tmp)) if args.repeat > 1 else args.video
        spec = SourceSpec(Path(video).name, "video", video)
        models = model_files(Settings(classifier=args.classifier))
        wall = dict.fromkeys(["lm", "fast"] + [key for key, *_ in runs], 0.0)
        cpu: dict[str, list] = {key: [] for key in wall}
        for _ in range(args.rounds):
            with native_stderr_to_devnull():
                wall["lm"] = max(wall["lm"], separate(spec, MediaPipeOnly(models), cpu["lm"]))
                wall["fast"] = max(wall["fast"], separate(spec, MediaPipeFast(models), cpu["fast"]))
            for key, _, options, checkout in runs:
                wall[key] = max(wall[key], whole_command(video, Path(tmp), args.classifier, *options, cpu=cpu[key],
                                                         checkout=checkout))
    print(f"video: {args.video} x{args.repeat}  cores: {cores()}  classifier: {args.classifier}  "
          f"(best of {args.rounds}, interleaved)")
    print(f"  decode+landmarker  {wall['lm']:8.1f} fps")
    print(f"  whole command      {wall['whole']:8.1f} fps  (audience analyze --workers 1, wall time; its default "
          f"--expression-every {Settings().expression_every_s:g})")
    if every:
        print(f"  whole command      {wall['rated']:8.1f} fps  (the same with {' '.join(every)})")
    print(f"ratio whole / (decode+landmarker): {wall['whole'] / wall['lm']:.3f} (target >= 0.90)")
    for key, label, _, _ in runs[1:]:
        print(f"ratio {label} / (decode+landmarker): {wall[key] / wall['lm']:.3f} ({wall[key]:.1f} fps)")
    best = {k: max(v) for k, v in cpu.items() if v}  # CPU time: less skewed by other work on a shared machine
    labels = [(key, label) for key, label, *_ in runs]
    print(f"over CPU time (user+system, every thread; best of {args.rounds}): decode+landmarker {best['lm']:.1f} "
          "fps; " + "; ".join(f"{label} {best[k]:.1f} fps: ratio {best[k] / best['lm']:.3f}" for k, label in labels))
    print(f"against decode+landmarker with the project's C-result conversion (ResultReader; CPU time): "
          f"{best['fast']:.1f} fps: ratio " + ", ".join(f"{label} {best[k] / best['fast']:.3f}" for k, label in labels))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--cores", type=int, default=1, help="pin to this many cores (0 = no pinning)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--classifier", default="fusion", choices=CLASSIFIERS)
    ap.add_argument("--batch-frames", type=int, default=Settings.batch_frames)
    ap.add_argument("--whole", action="store_true", help="time the whole analyze command instead of the loop")
    ap.add_argument("--repeat", type=int, default=1, help="--whole: play the video this many times")
    ap.add_argument("--against", type=Path, default=None, metavar="CHECKOUT",
                    help="--whole: also time the command of another checkout (e.g. `git worktree add /tmp/before "
                         "main`), in the same rounds (with --expression-every, with it too)")
    ap.add_argument("--expression-every", type=float, default=None, metavar="SECONDS",
                    help="read each face's crop at most every SECONDS (0: every frame; default: the command's "
                         f"default, {Settings().expression_every_s:g}); --whole: timed beside the default command")
    ap.add_argument("--conversion", action="store_true",
                    help="only time MediaPipe's stock result conversion against ResultReader's on each frame")
    ap.add_argument("--faces-per-call", type=int, default=None, metavar="K",
                    help="also time the full loop with the CNNs reading K faces per ONNX call (0: a window's faces "
                         "in one call) beside the device's default (CPU: 1), in the same rounds")
    ap.add_argument("--stages", action="store_true",
                    help="also print ms/frame of each stage after the landmarker (one more pass)")
    args = ap.parse_args(argv)
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.cores]))
    if args.whole:
        return main_whole(args)
    if args.conversion:
        spec = SourceSpec(Path(args.video).name, "video", args.video)
        with native_stderr_to_devnull():
            conv = Conversion(model_files(Settings(classifier=args.classifier)))
            separate(spec, conv)
        print(f"MediaPipe result -> arrays, CPU ms/frame over {conv.frames} frames ({conv.faces} faces): stock "
              f"from_ctypes + result_to_arrays {1000 * conv.stock / conv.frames:.3f}, ResultReader "
              f"{1000 * conv.fast / conv.frames:.3f} ({conv.stock / conv.fast:.1f}x)")
        return 0
    spec = SourceSpec(Path(args.video).name, "video", args.video)
    settings = Settings(classifier=args.classifier, batch_frames=args.batch_frames,
                        **({} if args.expression_every is None else {"expression_every_s": args.expression_every}))
    models = model_files(settings)
    factories = {"decode": DecodeOnly, "decode+landmarker": lambda: MediaPipeOnly(models),
                 "full loop": lambda: Full(settings, models)}
    other = None
    if args.faces_per_call is not None:
        other = f"full, {args.faces_per_call or 'all'} per call"
        factories[other] = lambda: Full(settings, models, faces_per_call=args.faces_per_call)
    best = dict.fromkeys(factories, 0.0)
    with native_stderr_to_devnull():
        for _ in range(args.rounds):
            for name, make in factories.items():
                best[name] = max(best[name], separate(spec, make()))
        full = Full(settings, models)
        decode_s, raw_s, full_s, n = paired(spec, MediaPipeOnly(models), full)
    print(f"video: {args.video}  cores: {cores()}  classifier: {args.classifier}  batch: {args.batch_frames} frames  "
          f"faces: {full.count.faces} in {n} frames")
    print(f"separate runs (best of {args.rounds}):")
    for name, fps in best.items():
        print(f"  {name:18s} {fps:8.1f} fps ({1000 / fps:6.2f} ms/frame)")
    print(f"  ratio full / (decode+landmarker): {best['full loop'] / best['decode+landmarker']:.3f}")
    if other:
        print(f"  ratio ({other}) / (decode+landmarker): {best[other] / best['decode+landmarker']:.3f}; "
              f"full loop (default faces per call) / ({other}): {best['full loop'] / best[other]:.3f}")
    lm_fps, full_fps = n / (decode_s + raw_s), n / (decode_s + full_s)
    print(f"paired pass: decode+landmarker {lm_fps:.1f} fps, full loop {full_fps:.1f} fps, after the landmarker "
          f"{1000 * (full_s - raw_s) / n:.2f} ms/frame")
    print(f"ratio full / (decode+landmarker): {full_fps / lm_fps:.3f} (target >= 0.90)")
    if args.stages:
        with native_stderr_to_devnull():
            timed = Full(settings, models, timed=True)
            separate(spec, timed)
        print("after the landmarker, ms/frame (one timed pass, the table sink included): " + ", ".join(
            f"{k} {1000 * v / timed.count.frames:.3f}" for k, v in timed.loop.times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
