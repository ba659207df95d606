"""`audience live`: real-time analysis of one camera, stream or paced file into a running screening.

    reader thread (newest frame, reconnects, gaps) -> stages -> per-second batches -> spool -> sender thread

Every result goes to the durable spool (service.spool) before anything is sent; the sender drains it to
the API or database, so an outage of either loses nothing and a restart resumes. SIGINT / SIGTERM stop
reading, finish the second in progress, try to send the backlog for `flush_timeout_s`, and exit 0;
whatever is still spooled is sent by the next start with the same spool.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .capture import resolve_inputs
from .errors import AudienceError, UnsupportedInput
from .observation import Observation
from .ops import LiveMetrics, OpsServer
from .pipeline import FrameLoop, build_stages, model_files, resolve_scene
from .reactions import Reactions
from .settings import Settings
from .stream import Gap, LiveReader
from .table import ObservationFileWriter, TableSink


@dataclass(frozen=True)
class LiveRequest:
    source: str
    screening: int
    settings: Settings  # the analysis (`audience live` analyses at a fixed rate: settings.fps is never None)
    content: int | None = None
    api: str | None = None
    db: str | None = None
    camera: str | None = None  # the name the service keeps this camera's data under (default: from source)
    realtime: bool = False
    spool: Path | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9108  # None: no /metrics server
    duration_s: float | None = None
    flush_timeout_s: float = 10.0
    out: Path | None = None  # also write the analysed observations (numbers only) here


def camera_name(source: str) -> str:
    name = source.split("?")[0].rstrip("/")
    return re.sub(r"[^A-Za-z0-9._:-]+", "_", name.rsplit("/", 1)[-1] if "://" not in name else name)[-120:] or "camera"


class SecondBatcher:
    """Sink: collects observations and, when the content second moves on, turns the finished seconds into
    one batch (per-track-second statistics + the seconds analysed) for the spool."""

    def __init__(self, content_offset: float, emit, id_base: int = 0, reactions: Reactions | None = None):
        self.offset, self.emit, self.id_base = content_offset, emit, id_base
        self.reactions = reactions or Reactions()
        self._table, self._covered, self._second = TableSink(), set(), None
        self._last_captured = 0.0
        self.max_id = id_base

    def write(self, obs: Observation) -> None:
        if self.id_base and len(obs):
            ids = obs.track_ids.copy()
            ids[ids >= 0] += self.id_base
            obs = obs.replace(track_ids=ids)
        if len(obs):
            self.max_id = max(self.max_id, int(obs.track_ids.max()))
        second = math.floor(obs.t - self.offset + 1e-9)
        if self._second is not None and second > self._second:
            self.flush()
        self._second = second
        self._covered.add(second)
        self._table.write(obs)

    def flush(self) -> None:
        if not self._covered:
            return
        cols = self.reactions.update(self._table.columns())
        self.emit(cols, sorted(self._covered))
        self._table, self._covered = TableSink(), set()

    def restart_ids(self) -> None:
        """After a gap the tracker starts again; ids continue above every id used so far."""
        self.id_base = self.max_id


def run_live(req: LiveRequest, stderr=None) -> dict:
    from service import publish
    from service.sender import ApiTarget, DbTarget, Sender
    from service.spool import Spool
    from service.stats import track_seconds
    from service.store import rows_to_columns

    stderr = stderr or sys.stderr
    if (req.api is None) == (req.db is None):
        raise AudienceError("give exactly one of --api URL and --db URL")
    specs = resolve_inputs([req.source])
    spec = specs[0]
    if spec.kind == "image":
        raise UnsupportedInput(f"{req.source}: live analysis needs a video, a camera or a stream URL")
    camera = req.camera or camera_name(spec.name)
    spool = Spool(req.spool or Path(f"audience-live-s{req.screening}-{camera_name(camera)}.spool.db"))
    key = f"s{req.screening}/{camera}"

    # the screening's offset to the content timeline: asked of the service, remembered in the spool so a
    # restart while the service is down can go on
    try:
        offset = (publish.screening_offset_from_db(req.db, req.screening, req.content) if req.db else
                  publish.screening_offset_from_api(req.api, req.screening, req.content))
        spool.set_meta(f"{key}/offset", offset)
    except publish.PublishError as exc:
        offset = spool.meta(f"{key}/offset")
        if offset is None or "cannot reach" not in str(exc):
            raise
        print(f"audience live: {exc}; going on with the offset remembered in the spool", file=stderr)
    origin = None
    id_base = 0
    if spec.kind == "stream":  # one timeline and one id space per screening camera, across restarts
        origin = spool.meta(f"{key}/origin") or time.time()
        spool.set_meta(f"{key}/origin", origin)
        id_base = int(spool.meta(f"{key}/max_id", 0))

    settings, scene_reason = resolve_scene(specs, dataclasses.replace(req.settings, batch_frames=1))
    stages = build_stages(settings, "video", model_files(settings))

    metrics = LiveMetrics(spool)
    writer = ObservationFileWriter(req.out / "observations.parquet") if req.out else None
    if req.out:
        req.out.mkdir(parents=True, exist_ok=True)
    captured_of_second: dict[int, float] = {}

    def emit(cols: dict, covered: list[int]) -> None:
        rows = track_seconds(cols, offset, settings.min_quality)
        for row in rows:
            row.pop("camera")
        captured = max((captured_of_second.pop(c, 0.0) for c in covered), default=0.0) or time.time()
        spool.put("stats", {"screening": req.screening, "camera": camera, "columns": rows_to_columns(rows),
                            "covered": covered, "captured": captured})
        if spec.kind == "stream":
            spool.set_meta(f"{key}/max_id", batcher.max_id)
        if writer is not None:
            writer.write_columns(cols)
        metrics.faces.inc(len(cols["t"]))
        sender.wake()

    def put_gap(gap: Gap) -> None:
        spool.put("gap", {"screening": req.screening, "camera": camera, "start_s": gap.start - offset,
                          "end_s": gap.end - offset, "reason": gap.reason})
        metrics.gap_seconds.inc(gap.end - gap.start)
        sender.wake()

    reader = LiveReader(spec, settings.fps, realtime=req.realtime, origin=origin)

    def heartbeat():
        return req.screening, camera, reader.state, metrics.detail(reader)

    def on_sent(kind, body, created):
        metrics.sent.inc()
        if kind == "stats":
            metrics.stored_latency.observe(max(time.time() - body.get("captured", created), 0.0))

    target = ApiTarget(req.api) if req.api else DbTarget(req.db)
    sender = Sender(spool, target, heartbeat, on_sent=on_sent, on_error=lambda m: metrics.send_errors.inc())
    batcher = SecondBatcher(offset, emit, id_base, Reactions(settings.reactions))

    class Timing:
        def write(self, obs: Observation) -> None:
            second = math.floor(obs.t - offset + 1e-9)
            captured_of_second[second] = time.time() - (time.monotonic() - current["captured"])
            metrics.analysed.inc()
            metrics.analysed_latency.observe(time.monotonic() - current["captured"])

    current = {"captured": time.monotonic()}
    loop = FrameLoop(stages, [batcher, Timing()], batch_frames=1)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    ops = OpsServer(metrics, reader, req.metrics_host, req.metrics_port, stderr) if req.metrics_port is not None else None
    started = time.monotonic()
    sender.start()
    reader.start()
    print(f"audience live: {spec.name} as camera {camera!r} -> screening {req.screening} at "
          f"{req.api or req.db} (scene {settings.scene}, {settings.fps:g} frames/s analysed"
          f"{', metrics at ' + ops.url if ops and ops.url else ''}; Ctrl-C stops)", file=stderr)
    try:
        while not stop.is_set():
            if req.duration_s is not None and time.monotonic() - started >= req.duration_s:
                break
            frame = reader.get(0.25)
            gaps = reader.take_gaps()
            if gaps:
                loop.flush()
                batcher.flush()
                for gap in gaps:
                    put_gap(gap)
                stages.tracker.reset()
                batcher.restart_ids()
            metrics.read.set_total(reader.frames_read)
            metrics.dropped.set_total(reader.frames_dropped)
            metrics.reconnects.set_total(reader.reconnects)
            if frame is None:
                if reader.finished.is_set() and (frame := reader.get(0)) is None:
                    break
                if frame is None:
                    continue
            current["captured"] = frame.captured
            loop.push(frame)
    finally:
        reader.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        loop.flush()
        batcher.flush()
        ongoing = reader.open_gap()
        if ongoing is not None:  # stopped while the source was down: that stretch is a gap too
            put_gap(ongoing)
        metrics.read.set_total(reader.frames_read)
        metrics.dropped.set_total(reader.frames_dropped)
        stages.close()
        if writer is not None:
            writer.close()
        drained = sender.drain(req.flush_timeout_s)
        sender.final_beat()
        sender.stop()
        sender.join(timeout=10)
        if ops is not None:
            ops.close()
    if reader.error is not None:
        raise reader.error
    elapsed = time.monotonic() - started
    summary = metrics.summary(reader, elapsed)
    summary.update({"camera": camera, "screening": req.screening, "scene": settings.scene,
                    "scene_reason": scene_reason, "spool": str(spool.path), "spool_left": spool.depth(),
                    "refused": spool.dead(), "drained": drained})
    spool.close()
    print(f"audience live: {summary['frames_analysed']} frames analysed ({summary['analysis_fps']:.2f}/s), "
          f"{summary['frames_dropped']} dropped, {summary['faces']} faces, {summary['reconnects']} reconnects; "
          + ("everything sent" if drained else f"{summary['spool_left']} batches wait in {spool.path} "
             "(sent at the next start)"), file=stderr)
    return summary


def summary_json(summary: dict) -> str:
    return json.dumps(summary, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))

