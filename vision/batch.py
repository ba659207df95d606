"""`audience batch MANIFEST`: a season of recordings -> the database and one Parquet file per recording.

The manifest (CSV or Parquet) has one row per recording: `path` (file or URL; relative to the manifest),
`content` (title), `screening` (name), optionally `camera` (default: the file's stem), `content_offset`
(seconds, default 0), `labels` ("k=v;k=v") and any other column as a screening label. Contents are matched
by title and screenings by the label `name` within their content, or created.

Each recording is analysed as `audience analyze` would (jobs planned by runner.plan_jobs, on the local pool
or a Ray cluster), its readings go through vision.reactions per recording, its observations are written to
`OUT/<content>__<screening>__<camera>.parquet` (`pd.read_parquet(OUT)` opens them all as one table), and
its per-track-second statistics are stored through the idempotent ingest. Only then is its marker
`OUT/_done/<key>.json` written: a rerun skips recordings with a marker and finishes the others; one cut
off between ingest and marker is analysed again and its statistics are found already stored (nothing
counts twice).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .capture import probe_video, resolve_inputs
from .errors import EXIT_OK, EXIT_PARTIAL, AudienceError, InputNotFound
from .pipeline import Settings, resolve_scene
from .progress import Progress
from .labels import DEFAULT_MIN_QUALITY
from .reactions import ReactionOptions, Reactions
from .runner import Job, default_workers, plan_jobs, run_jobs
from .stats import track_seconds

REQUIRED = ("path", "content", "screening")
KNOWN = REQUIRED + ("camera", "content_offset", "labels")
AUDIENCE_DEFAULT_FPS = 2.0


class ManifestError(AudienceError):
    """The manifest cannot be read or a row is malformed (exit 2, like any bad usage)."""

    exit_code = 2


@dataclass(frozen=True)
class Recording:
    row: int  # 1-based data row of the manifest
    path: str
    content: str
    screening: str
    camera: str
    content_offset: float = 0.0
    labels: tuple = ()  # (key, value) pairs besides the screening's name

    @property
    def key(self) -> str:
        """File-name-safe and unique within a season: content, screening and camera."""
        return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "_", v).strip("_") or "_"
                         for v in (self.content, self.screening, self.camera))


def _rows(path: Path) -> list[dict]:
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return [{k: "" if v is None else str(v) for k, v in r.items()} for r in pq.read_table(path).to_pylist()]
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f)]
    except FileNotFoundError:
        raise InputNotFound(f"manifest {path} not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"manifest {path}: unreadable ({exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _labels(text: str, row: int) -> list[tuple[str, str]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ManifestError(f"manifest row {row}: labels must read k=v;k=v, got {text!r}")
        out.append((key.strip(), value.strip()))
    return out


def read_manifest(path: Path | str) -> list[Recording]:
    """The recordings of a manifest, checked. Raises ManifestError (exit 2) or InputNotFound (exit 3)."""
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise ManifestError(f"manifest {path}: no rows (columns: {', '.join(REQUIRED)}, optional "
                            f"{', '.join(KNOWN[3:])})")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise ManifestError(f"manifest {path}: missing column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})")
    out, seen = [], {}
    for i, r in enumerate(rows, 1):
        for c in REQUIRED:
            if not r[c]:
                raise ManifestError(f"manifest row {i}: empty {c!r}")
        try:
            offset = float(r.get("content_offset") or 0.0)
        except ValueError:
            raise ManifestError(f"manifest row {i}: content_offset {r['content_offset']!r} is not a number") from None
        if not np.isfinite(offset):
            raise ManifestError(f"manifest row {i}: content_offset must be a finite number of seconds")
        location = r["path"]
        if "://" not in location and not location.isdigit():
            p = Path(location)
            location = str(p if p.is_absolute() else path.parent / p)
            if not Path(location).exists():
                raise InputNotFound(f"manifest row {i}: {r['path']} not found")
        labels = _labels(r.get("labels", ""), i) + [(k, r[k]) for k in r if k not in KNOWN and k and r[k]]
        if "name" in dict(labels):
            raise ManifestError(f"manifest row {i}: the label 'name' is the screening column's")
        rec = Recording(i, location, r["content"], r["screening"],
                        r.get("camera") or Path(r["path"].split("?")[0].rstrip("/")).stem or "camera",
                        offset, tuple(labels))
        if rec.key in seen:
            raise ManifestError(f"manifest rows {seen[rec.key]} and {i}: the same content, screening and camera "
                                f"({rec.content} / {rec.screening} / {rec.camera}); give each camera its own name")
        seen[rec.key] = i
        out.append(rec)
    return out


def _duration(rec: Recording) -> float:
    frames, fps = probe_video(rec.path) if "://" not in rec.path else (0, 0.0)
    return frames / fps - rec.content_offset if frames and fps else 0.0


def match_or_create(engine, recordings: list[Recording]) -> dict[tuple[str, str], int]:
    """(content title, screening name) -> screening id; contents matched by title, screenings by the
    label `name` within the content, else created (a new content lasts as long as its longest recording)."""
    from sqlmodel import Session, select

    from service.models import Content, Screening

    ids: dict[tuple[str, str], int] = {}
    with Session(engine) as session:
        for rec in recordings:
            if (rec.content, rec.screening) in ids:
                continue
            content = session.exec(select(Content).where(Content.title == rec.content).order_by(Content.id)).first()
            if content is None:
                duration = max([_duration(r) for r in recordings if r.content == rec.content] + [1.0])
                content = Content(title=rec.content, duration_s=duration)
                session.add(content)
                session.commit()
            found = [s for s in session.exec(select(Screening).where(Screening.content_id == content.id)
                                             .order_by(Screening.id)) if (s.labels or {}).get("name") == rec.screening]
            if found:
                screening = found[0]
            else:
                screening = Screening(content_id=content.id, content_offset_s=rec.content_offset,
                                      labels={"name": rec.screening, **dict(rec.labels)})
                session.add(screening)
                session.commit()
            ids[(rec.content, rec.screening)] = screening.id
    return ids


@dataclass(frozen=True)
class BatchRequest:
    manifest: Path
    db: str
    out: Path
    engine: str = "local"  # local | ray
    address: str | None = None  # Ray cluster address (None: start one on this machine)
    workers: int | None = None
    fps: float | None = None
    classifier: str = "fusion"
    scene: str = "auto"
    detect_every_s: float = 2.0
    max_faces: int | None = None
    max_lost_s: float = 1.0
    device: str = "cpu"
    reactions: ReactionOptions = field(default_factory=ReactionOptions)


def _write_atomic(path: Path, write) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    write(tmp)
    os.replace(tmp, path)


def _write_parquet(cols: dict, rec: Recording, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .table import _arrow_table

    table = _arrow_table(cols)
    n = table.num_rows
    for name, value in (("content", rec.content), ("screening", rec.screening), ("camera", rec.camera)):
        table = table.append_column(name, pa.array([value] * n, pa.string()))
    _write_atomic(path, lambda tmp: pq.write_table(table, str(tmp), store_schema=False))


def _settings(req: BatchRequest, spec, detector) -> Settings:
    settings = Settings(fps=req.fps, classifier=req.classifier, max_faces=req.max_faces, max_lost_s=req.max_lost_s,
                        scene=req.scene, detect_every_s=req.detect_every_s, device=req.device)
    settings, _ = resolve_scene([spec], settings, detector)
    if settings.scene == "audience" and req.fps is None:
        settings = dataclasses.replace(settings, fps=AUDIENCE_DEFAULT_FPS)
    return settings


def _expected(spec, fps) -> int:
    if spec.kind != "video":
        return 1
    n, f = probe_video(spec.location)
    return int(n if not fps or not f or fps >= f else np.ceil(n * fps / f))


def run_batch(req: BatchRequest, quiet: bool = False, stdout=None) -> int:
    from service.uplink.client import DbClient

    stdout = stdout or sys.stdout
    started = time.perf_counter()
    recordings = read_manifest(req.manifest)
    db_engine = _open_db(req.db)
    screening_ids = match_or_create(db_engine, recordings)
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
    if req.scene == "auto" and specs:  # one detector decides every recording's scene
        from .detector import MtcnnDetector, MtcnnOptions
        from .pipeline import model_files

        models = model_files(Settings(scene="auto"))
        detector = MtcnnDetector(MtcnnOptions(*(models[f"mtcnn_{n}"].path for n in ("pnet", "rnet", "onet")),
                                              device=req.device))
    settings = [_settings(req, spec, detector) for spec in specs]
    for spec, s in zip(specs, settings):
        jobs += [dataclasses.replace(j, settings=s)
                 for j in plan_jobs([spec], workers if len(specs) < workers else 1, overlap_s=req.max_lost_s + 1.0)]
    job_recording = np.cumsum([1 if j.boundary <= 0 else 0 for j in jobs]) - 1  # job index -> recording index
    progress = Progress(sum(_expected(sp, s.fps) for sp, s in zip(specs, settings)) or None, label="season",
                        enabled=False if quiet else None)
    code = EXIT_OK
    try:
        results = run_jobs(jobs, settings[0] if settings else Settings(), min(workers, max(1, len(jobs))),
                           progress.advance, engine)
        for k, (rec, result) in enumerate(zip(todo, results)):
            t0 = time.perf_counter()
            (cols, report), = result
            cols = Reactions(req.reactions).update(cols)
            _write_parquet(cols, rec, req.out / f"{rec.key}.parquet")
            sid = screening_ids[(rec.content, rec.screening)]
            inserted, unchanged = DbClient(req.db).publish(sid, [(rec.camera, track_seconds(cols, rec.content_offset, DEFAULT_MIN_QUALITY))])
            nodes = sorted({engine.nodes[j][:8] for j in np.flatnonzero(job_recording == k)}) if engine else []
            marker = {"row": rec.row, "content": rec.content, "screening": rec.screening, "camera": rec.camera,
                      "screening_id": sid, "frames": report.frames_analysed, "faces": report.faces,
                      "tracks": report.tracks, "inserted": inserted, "unchanged": unchanged,
                      "seconds": round(report.elapsed_s + time.perf_counter() - t0, 3),
                      "stopped_early": report.stopped_early, "nodes": nodes}
            _write_atomic(done_dir / f"{rec.key}.json", lambda tmp: tmp.write_text(json.dumps(marker)))
            if report.stopped_early:
                code = EXIT_PARTIAL
                print(f"audience: warning: {rec.path} stopped decoding at frame {report.frames_read}; analysed "
                      "what decoded", file=sys.stderr)
    finally:
        progress.close()
        db_engine.dispose()
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


def _open_db(url: str):
    from service.db import make_engine, migrate
    from service.uplink.client import PublishError

    try:
        engine = make_engine(url)
        migrate(engine)
    except Exception as exc:  # noqa: BLE001 - a driver error is one line
        raise PublishError(f"database {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    return engine
