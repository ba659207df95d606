"""`audience analyze`: inputs -> observations file, curves.csv, curves.png, summary.json."""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .capture import probe_video, resolve_inputs
from .curves import BucketStats, write_curves_csv
from .errors import EXIT_OK, EXIT_PARTIAL, AudienceError, UnsupportedInput
from .labels import DEFAULT_MIN_QUALITY, EMOTIONS
from .pipeline import Settings, model_files, resolve_scene
from .plot import plot_curves
from .progress import Progress
from .reactions import ReactionOptions, Reactions
from .report import TrackSummary, write_report
from .seats import SeatMap
from .runner import default_workers, plan_jobs, run_jobs
from .stats import track_seconds
from .table import ObservationFileWriter


AUDIENCE_DEFAULT_FPS = 2.0


@dataclass(frozen=True)
class AnalyzeRequest:
    inputs: list[str]
    out: Path
    fmt: str = "parquet"
    fps: float | None = None
    classifier: str = "fusion"
    bucket: float = 1.0
    content_offset: float = 0.0
    max_faces: int | None = None
    max_lost_s: float = 1.0
    workers: int | None = None
    scene: str = "auto"
    detect_every_s: float = 2.0
    seat_map: str | None = None
    seat_empty_after_s: float = 10.0
    confirm_hits: int = 2
    confirm_within_s: float = 1.0
    min_quality: float = DEFAULT_MIN_QUALITY  # curves: expressions from faces at or above this quality
    detector: str = "centerface+mtcnn"  # the audience scene's face detector (vision.detection.DETECTORS)
    db: str | None = None  # also store the statistics here (service.uplink.client)
    api: str | None = None  # ...or send them to this running service
    api_key: str | None = None  # sent to --api (None: an open service)
    screening: int | None = None
    reactions: ReactionOptions = ReactionOptions()  # per-viewer smoothing and baselines (vision.reactions)
    device: str = "cpu"  # ONNX models: cpu, cuda or auto (vision.onnx)
    engine: str = "local"  # local: this machine's processes; ray: a Ray cluster (vision.ray_engine)
    address: str | None = None  # the Ray cluster (None: start one here)


def _expected_frames(specs, fps) -> int | None:
    total = 0
    for s in specs:
        if s.kind == "image":
            total += 1
        elif s.kind == "video":
            n, f = probe_video(s.location)
            if not n:
                return None
            total += int(n if not fps or not f or fps >= f else np.ceil(n * fps / f))
        else:
            return None
    return total


def run_analyze(req: AnalyzeRequest, quiet: bool = False, stdout=None) -> int:
    stdout = stdout or sys.stdout
    started = time.perf_counter()
    specs = resolve_inputs(req.inputs)
    settings = Settings(fps=req.fps, classifier=req.classifier, max_faces=req.max_faces, max_lost_s=req.max_lost_s,
                        scene=req.scene, detect_every_s=req.detect_every_s, seat_map=req.seat_map,
                        seat_empty_after_s=req.seat_empty_after_s, confirm_hits=req.confirm_hits,
                        confirm_within_s=req.confirm_within_s, detector=req.detector, device=req.device)
    if req.seat_map:
        SeatMap.load(req.seat_map)  # a bad map fails here, before any work
    settings, scene_reason = resolve_scene(specs, settings)
    if settings.scene == "audience" and req.fps is None:  # every frame of 100 faces is not needed for curves
        settings = dataclasses.replace(settings, fps=AUDIENCE_DEFAULT_FPS)
    models = model_files(settings)  # fail on a bad model before any work
    try:
        req.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AudienceError(f"{req.out}: cannot create output folder ({exc.strerror})") from None
    engine = None
    workers = req.workers or default_workers()
    if req.engine == "ray":
        from .ray_engine import RayEngine

        engine = RayEngine(req.address, req.workers)
        workers = req.workers or max(1, engine.connect())
    jobs = plan_jobs(specs, workers, overlap_s=req.max_lost_s + 1.0)
    workers = min(workers, len(jobs))
    progress = Progress(_expected_frames(specs, settings.fps), enabled=False if quiet else None)
    stats = BucketStats(req.bucket, req.content_offset, req.min_quality)
    tracks = TrackSummary(req.min_quality)
    obs_path = req.out / f"observations.{req.fmt}"
    reports, batches = [], []
    with ObservationFileWriter(obs_path, req.fmt) as writer:
        try:
            for results in run_jobs(jobs, settings, workers, progress.advance, engine):
                for cols, report in results:
                    cols = Reactions(req.reactions).update(cols)  # each source's viewers, in time order
                    writer.write_columns(cols)
                    stats.add_rows(cols)
                    tracks.add_rows(cols)
                    if req.db or req.api:
                        batches.append((report.source, track_seconds(cols, req.content_offset, req.min_quality)))
                    stats.add_frames(np.asarray(report.analysed_t, np.float64))
                    reports.append(report)
        finally:
            progress.close()
    elapsed = time.perf_counter() - started

    failed = [r for r in reports if r.error]
    if failed and len(failed) == len(reports):
        raise UnsupportedInput(f"none of the {len(reports)} files could be read (first: {failed[0].error})")
    curves = stats.curves()
    write_curves_csv(curves, req.out / "curves.csv")
    names = ", ".join(dict.fromkeys(r.source for r in reports))
    plot_curves(curves, req.out / "curves.png",
                f"{names[:90]}{'…' if len(names) > 90 else ''} — {writer.rows} face observations, "
                f"bucket {req.bucket:g} s")

    frames_analysed = sum(r.frames_analysed for r in reports)
    images = [r for r in reports if r.kind == "image" and not r.error]
    summary = {
        "inputs": [str(i) for i in req.inputs],
        "sources": len(reports),
        "frames_read": sum(r.frames_read for r in reports),
        "frames_analysed": frames_analysed,
        "faces": writer.rows,
        "tracks": sum(r.tracks for r in reports),
        "coverage": stats.coverage(),
        "images_without_faces": sum(1 for r in images if r.faces == 0),
        "files_skipped": [{"source": r.source, "error": r.error} for r in failed],
        "achieved_fps": frames_analysed / elapsed if elapsed > 0 else 0.0,
        "elapsed_s": elapsed,
        "workers": workers,
        "engine": req.engine,
        "settings": {"fps": settings.fps, "classifier": req.classifier, "bucket_s": req.bucket,
                     "content_offset_s": req.content_offset, "max_faces": settings.max_faces or (500 if settings.scene == "audience" else 8),
                     "max_lost_s": req.max_lost_s, "format": req.fmt, "scene": settings.scene,
                     "scene_reason": scene_reason,
                     "detect_every_s": req.detect_every_s, "seat_map": req.seat_map,
                     "seat_empty_after_s": req.seat_empty_after_s, "confirm_hits": req.confirm_hits,
                     "confirm_within_s": req.confirm_within_s, "min_quality": req.min_quality,
                     "smooth_s": req.reactions.smooth_s, "baseline_s": req.reactions.baseline_s,
                     "detector": req.detector,
                     "device": settings.device},
        "labels": list(EMOTIONS),
        "models": {n: {"file": m.path.name, "sha256": m.sha256} for n, m in models.items()},
        "per_source": [r.public() for r in reports],
        "outputs": [obs_path.name, "curves.csv", "curves.png", "summary.json", "report.html"],
    }
    (req.out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(req.out / "report.html", summary, curves, tracks.rows(), names)

    if req.db or req.api:
        from service.uplink.client import connect

        sent = connect(req.db, req.api, req.api_key).publish(req.screening, batches)
        summary["published"] = {"to": req.db or req.api, "screening": req.screening,
                                "inserted": sent[0], "unchanged": sent[1]}
        (req.out / "summary.json").write_text(json.dumps(summary, indent=2))
        if not quiet:
            print(f"stored {sent[0]} track-seconds in screening {req.screening} ({sent[1]} already there)",
                  file=stdout)

    code = EXIT_OK
    for r in failed:
        print(f"audience: warning: skipped {r.source}: {r.error}", file=sys.stderr)
    for r in reports:
        if r.stopped_early:
            print(f"audience: warning: {r.source} stopped decoding at frame {r.frames_read} of "
                  f"{r.frames_expected} (truncated or corrupt); analysed what decoded", file=sys.stderr)
            code = EXIT_PARTIAL
    if writer.rows == 0:
        print(f"audience: no faces found in {names} ({frames_analysed} frames analysed); "
              f"outputs written with zero rows", file=sys.stderr)
    elif images and summary["images_without_faces"]:
        print(f"audience: {summary['images_without_faces']} of {len(images)} images had no face", file=sys.stderr)
    if not quiet:
        print(f"analysed {frames_analysed} frames from {len(reports)} source(s): {writer.rows} face observations, "
              f"{summary['tracks']} tracks, {summary['achieved_fps']:.1f} fps -> {req.out}/ "
              f"({', '.join(summary['outputs'])})", file=stdout)
    return code
