"""`audience analyze`'s engine: inputs -> observations file, curves.csv, curves.png, summary.json, report.html.

The command line (service.cli.analyze) builds the request and, with --db / --api, a `Publisher`."""
from __future__ import annotations

import json
import sys
import time
from typing import Protocol

import numpy as np

from .capture import probe_video, resolve_inputs
from .curves import BucketStats, write_curves_csv
from .errors import EXIT_OK, EXIT_PARTIAL, AudienceError, UnsupportedInput
from .labels import EMOTIONS
from .pipeline import model_files
from .scene import resolve_scene
from .plot import curves_figure, save
from .progress import Progress
from .report import TrackSummary, write_report
from .seats import SeatMap
from .runner import default_workers, plan_jobs, run_jobs
from .settings import AnalyzeRequest
from .table import ObservationFileWriter


class Publisher(Protocol):
    """Where the statistics of a run go besides its files (service.cli.analyze: --db / --api)."""

    def add(self, source: str, cols: dict) -> None:
        """Each source's observations, once its viewers' reactions are computed, in input order."""

    def publish(self) -> tuple[dict, str]:
        """After the outputs are written: (what summary.json records under "published", a line to print)."""


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


def run_analyze(req: AnalyzeRequest, quiet: bool = False, stdout=None, publisher: Publisher | None = None) -> int:
    """Analyse the inputs into req.out; `publisher` also gets each source's observations. Returns the exit code."""
    stdout = stdout or sys.stdout
    started = time.perf_counter()
    specs = resolve_inputs(req.inputs)
    asked = req.settings
    if asked.seat_map:
        SeatMap.load(asked.seat_map)  # a bad map fails here, before any work
    settings, scene_reason = resolve_scene(specs, asked)
    settings = settings.with_audience_rate()
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
    jobs = plan_jobs(specs, workers, overlap_s=settings.max_lost_s + 1.0)
    workers = min(workers, len(jobs))
    progress = Progress(_expected_frames(specs, settings.fps), enabled=False if quiet else None)
    stats = BucketStats(req.bucket, req.content_offset, settings.min_quality)
    tracks = TrackSummary(settings.min_quality)
    obs_path = req.out / f"observations.{req.fmt}"
    reports = []
    with ObservationFileWriter(obs_path, req.fmt) as writer:
        try:
            for results in run_jobs(jobs, settings, workers, progress.advance, engine):
                for cols, report in results:
                    writer.write_columns(cols)
                    stats.add_rows(cols)
                    tracks.add_rows(cols)
                    if publisher is not None:
                        publisher.add(report.source, cols)
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
    figure = curves_figure(curves, f"{names[:90]}{'…' if len(names) > 90 else ''} — {writer.rows} face "
                                   f"observations, bucket {req.bucket:g} s")
    save(figure, req.out / "curves.png")  # drawn once: the report writes the same figure as SVG

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
        "settings": {"fps": settings.fps, "classifier": settings.classifier, "bucket_s": req.bucket,
                     "content_offset_s": req.content_offset,
                     "max_faces": settings.max_faces or (500 if settings.scene == "audience" else 8),
                     "max_lost_s": settings.max_lost_s, "format": req.fmt, "scene": settings.scene,
                     "scene_reason": scene_reason,
                     "detect_every_s": settings.detect_every_s, "seat_map": settings.seat_map,
                     "seat_empty_after_s": settings.seat_empty_after_s, "confirm_hits": settings.confirm_hits,
                     "confirm_within_s": settings.confirm_within_s, "min_quality": settings.min_quality,
                     "smooth_s": settings.reactions.smooth_s, "baseline_s": settings.reactions.baseline_s,
                     "detector": settings.detector, "expression_every_s": settings.expression_every_s,
                     "device": settings.device, "label_rule": settings.labels_by},
        "labels": list(EMOTIONS),
        "models": {n: {"file": m.path.name, "sha256": m.sha256} for n, m in models.items()},
        "per_source": [r.public() for r in reports],
        "outputs": [obs_path.name, "curves.csv", "curves.png", "summary.json", "report.html"],
    }
    (req.out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(req.out / "report.html", summary, curves, tracks.rows(), names, figure)

    if publisher is not None:
        summary["published"], line = publisher.publish()
        (req.out / "summary.json").write_text(json.dumps(summary, indent=2))
        if not quiet:
            print(line, file=stdout)

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
