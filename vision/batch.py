"""`audience batch`'s engine: a season of recordings -> one Parquet file per recording, and a summary.

The recordings come from a manifest (vision.manifest). Each is analysed as `audience analyze` would (jobs
planned by runner.plan_jobs, on the local pool or a Ray cluster), its readings go through vision.reactions
per recording, its observations are written to `OUT/<content>__<screening>__<camera>.parquet`
(`pd.read_parquet(OUT)` opens them all as one table), and it is handed to `store` (service.season: its
per-track-second statistics through the database's idempotent ingest). Only then is its marker
`OUT/_done/<key>.json` written: a rerun skips recordings with a marker and finishes the others; one cut
off between `store` and marker is analysed again and its statistics are found already stored (nothing
counts twice).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .capture import probe_video, resolve_inputs
from .errors import EXIT_OK, EXIT_PARTIAL, AudienceError, ManifestError
from .manifest import Recording
from .scene import resolve_scene
from .progress import Progress
from .runner import Job, default_workers, plan_jobs, run_jobs
from .settings import Settings

# store(recording, its observations) -> what the marker and the summary table record besides the analysis
# (service.season: screening_id, inserted, unchanged)
Store = Callable[[Recording, dict], dict]


@dataclass(frozen=True)
class BatchRequest:
    out: Path
    settings: Settings  # scene "auto": decided per recording
    engine: str = "local"  # local | ray
    address: str | None = None  # Ray cluster address (None: start one on this machine)
    workers: int | None = None


def _write_atomic(path: Path, write) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    write(tmp)
    os.replace(tmp, path)


def _write_parquet(cols: dict, rec: Recording, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .table import arrow_table

    table = arrow_table(cols)
    n = table.num_rows
    for name, value in (("content", rec.content), ("screening", rec.screening), ("camera", rec.camera)):
        table = table.append_column(name, pa.array([value] * n, pa.string()))
    _write_atomic(path, lambda tmp: pq.write_table(table, str(tmp), store_schema=False))


def _settings(req: BatchRequest, spec, detector) -> Settings:
    settings, _ = resolve_scene([spec], req.settings, detector)
    return settings.with_audience_rate()


def _expected(spec, fps) -> int:
    if spec.kind != "video":
        return 1
    n, f = probe_video(spec.location)
    return int(n if not fps or not f or fps >= f else np.ceil(n * fps / f))


def run_batch(req: BatchRequest, recordings: list[Recording], store: Store, quiet: bool = False,
              stdout=None) -> int:
    """Analyse the recordings not yet done (no marker), each handed to `store` before its marker is written.
    Returns the exit code (EXIT_PARTIAL when a video stopped decoding early)."""
    stdout = stdout or sys.stdout
    started = time.perf_counter()
    done_dir = req.out / "_done"
    try:
        done_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AudienceError(f"{req.out}: cannot create output folder ({exc.strerror})") from None
    todo = [r for r in recordings if not (done_dir / f"{r.key}.json").exists()]
    specs = []
    for rec in todo:
        found = resolve_inputs([rec.path])
        if len(found) != 1:
            raise ManifestError(f"manifest row {rec.row}: {rec.path} holds {len(found)} sources; a recording is "
                                "one video, stream or image")
        specs.append(found[0])

    engine = None
    workers = req.workers or default_workers()
    if req.engine == "ray" and todo:
        from .ray_engine import RayEngine

        engine = RayEngine(req.address, req.workers)
        workers = req.workers or max(1, engine.connect())
    jobs: list[Job] = []
    detector = None
    if req.settings.scene == "auto" and specs:  # one detector decides every recording's scene
        from .detector import MtcnnDetector, MtcnnOptions
        from .pipeline import model_files

        models = model_files(Settings(scene="auto"))
        detector = MtcnnDetector(MtcnnOptions(*(models[f"mtcnn_{n}"].path for n in ("pnet", "rnet", "onet")),
                                              device=req.settings.device))
    settings = []
    for spec in specs:
        settings.append(_settings(req, spec, detector))
        if engine is not None and len(settings) == 1:  # the actors load models while the other scenes are chosen
            from .pipeline import job_mode

            engine.warm(settings[0], job_mode([spec]))
    for spec, s in zip(specs, settings):
        jobs += [dataclasses.replace(j, settings=s)
                 for j in plan_jobs([spec], workers if len(specs) < workers else 1, overlap_s=s.max_lost_s + 1.0)]
    job_recording = np.cumsum([1 if j.boundary <= 0 else 0 for j in jobs]) - 1  # job index -> recording index
    progress = Progress(sum(_expected(sp, s.fps) for sp, s in zip(specs, settings)) or None, label="season",
                        enabled=False if quiet else None)
    code = EXIT_OK
    try:
        results = run_jobs(jobs, settings[0] if settings else req.settings, min(workers, max(1, len(jobs))),
                           progress.advance, engine)
        for k, (rec, result) in enumerate(zip(todo, results)):
            t0 = time.perf_counter()
            (cols, report), = result
            _write_parquet(cols, rec, req.out / f"{rec.key}.parquet")
            stored = store(rec, cols)
            nodes = sorted({engine.nodes[j][:8] for j in np.flatnonzero(job_recording == k)}) if engine else []
            marker = {"row": rec.row, "content": rec.content, "screening": rec.screening, "camera": rec.camera,
                      **stored, "frames": report.frames_analysed, "faces": report.faces, "tracks": report.tracks,
                      "seconds": round(report.elapsed_s + time.perf_counter() - t0, 3),
                      "stopped_early": report.stopped_early, "nodes": nodes}
            _write_atomic(done_dir / f"{rec.key}.json", lambda tmp: tmp.write_text(json.dumps(marker)))
            if report.stopped_early:
                code = EXIT_PARTIAL
                print(f"audience: warning: {rec.path} stopped decoding at frame {report.frames_read}; analysed "
                      "what decoded", file=sys.stderr)
    finally:
        progress.close()
    table = summary_rows(recordings, done_dir, {r.key for r in todo})
    _write_atomic(req.out / "_summary.csv", lambda tmp: _write_csv(table, tmp))
    if not quiet:
        print(format_table(table), file=stdout)
        extra = f", worker peak RSS {engine.peak_rss_mb:.0f} MB" if engine and engine.peak_rss_mb else ""
        print(f"{len(todo)} recording(s) analysed, {len(recordings) - len(todo)} already complete, "
              f"engine {req.engine}, {time.perf_counter() - started:.1f} s{extra} -> {req.out}/", file=stdout)
    return code




SUMMARY = ("content", "screening", "camera", "status", "frames", "faces", "tracks", "inserted", "unchanged",
           "seconds", "nodes")


def summary_rows(recordings: list[Recording], done_dir: Path, ran: set[str]) -> list[dict]:
    rows = []
    for rec in recordings:
        marker = done_dir / f"{rec.key}.json"
        m = json.loads(marker.read_text()) if marker.exists() else {}
        status = "done" if rec.key in ran and m else "complete before" if m else "not done"
        rows.append({"content": rec.content, "screening": rec.screening, "camera": rec.camera, "status": status,
                     **{k: m.get(k, "") for k in SUMMARY[4:]}, "nodes": ";".join(m.get("nodes", []))})
    return rows


def _write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, SUMMARY)
        w.writeheader()
        w.writerows(rows)


def format_table(rows: list[dict]) -> str:
    cols = [c for c in SUMMARY if c != "nodes" or any(r["nodes"] for r in rows)]
    cells = [[str(c) for c in cols]] + [[str(r[c]) for c in cols] for r in rows]
    width = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, width)).rstrip() for row in cells)
