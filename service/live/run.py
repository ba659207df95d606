"""`audience live`: real-time analysis of one camera, stream or paced file into a running screening.

    reader thread (newest frame, reconnects, gaps) -> frame loop -> per-second batcher -> spool -> sender thread
                                                                   /metrics and /healthz beside them (ops.py)

Every result goes to the durable spool (service.uplink.spool) before anything is sent; the sender drains
it to the API or database, so an outage of either loses nothing and a restart resumes. SIGINT / SIGTERM
stop reading, finish the second in progress, try to send the backlog for `flush_timeout_s`, and exit 0;
whatever is still spooled is sent by the next start with the same spool.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.capture import SourceSpec, resolve_inputs
from vision.errors import AudienceError, Unreachable, UnsupportedInput
from vision.pipeline import FrameLoop, build_stages, model_files
from vision.scene import resolve_scene
from vision.reactions import Reactions
from vision.settings import Settings
from vision.stream import LiveReader
from vision.table import ObservationFileWriter

from ..uplink.client import ApiClient, DbClient, connect
from ..uplink.sender import Sender, target_for
from ..uplink.spool import Spool
from .batcher import Outbox, SecondBatcher, Timing
from .loop import LiveAnalysis, pump, stop_on_signals
from .ops import LiveMetrics, OpsServer


@dataclass(frozen=True)
class LiveRequest:
    source: str
    screening: int
    settings: Settings  # the analysis (live analyses at a fixed rate: settings.fps is set; one frame per window)
    content: int | None = None
    api: str | None = None
    db: str | None = None
    api_key: str | None = None  # sent with every request to --api (None: an open service)
    camera: str | None = None  # the name the service keeps this camera's data under (default: from source)
    realtime: bool = False
    spool: Path | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9108  # None: no /metrics server
    duration_s: float | None = None
    flush_timeout_s: float = 10.0
    out: Path | None = None  # also write the analysed observations (numbers only) here


def run_live(req: LiveRequest, stderr=None) -> dict:
    stderr = stderr or sys.stderr
    if (req.api is None) == (req.db is None):
        raise AudienceError("give exactly one of --api URL and --db URL")
    client = connect(req.db, req.api, req.api_key)
    spec = live_source(req.source)
    camera = req.camera or camera_name(spec.name)
    spool = Spool(req.spool or Path(f"audience-live-s{req.screening}-{camera_name(camera)}.spool.db"))
    key = f"s{req.screening}/{camera}"
    offset = screening_offset(client, req, spool, key, stderr)
    origin, id_base = stream_timeline(spool, key) if spec.kind == "stream" else (None, 0)
    settings, scene_reason = resolve_scene([spec], dataclasses.replace(req.settings, batch_frames=1))
    stages = build_stages(settings, "video", model_files(settings))

    metrics = LiveMetrics(spool)
    reader = LiveReader(spec, settings.fps, realtime=req.realtime, origin=origin)
    sender = Sender(spool, target_for(client), lambda: (req.screening, camera, reader.state, metrics.detail(reader)),
                    on_sent=metrics.on_sent, on_error=metrics.on_error)
    if req.out:
        req.out.mkdir(parents=True, exist_ok=True)
    writer = ObservationFileWriter(req.out / "observations.parquet") if req.out else None
    timing = Timing(offset, metrics)
    outbox = Outbox(spool, req.screening, camera, offset, settings.min_quality, timing, metrics, sender.wake,
                    ids_key=f"{key}/max_id" if spec.kind == "stream" else None, writer=writer)
    batcher = SecondBatcher(offset, outbox, id_base, Reactions(settings.reactions))
    analysis = LiveAnalysis(FrameLoop(stages, [batcher, timing], batch_frames=1), stages.tracker, batcher, timing)
    ops = None if req.metrics_port is None else OpsServer(metrics, reader, req.metrics_host, req.metrics_port, stderr)

    started = time.monotonic()
    sender.start()
    reader.start()
    print(f"audience live: {spec.name} as camera {camera!r} -> screening {req.screening} at "
          f"{req.api or req.db} (scene {settings.scene}, {settings.fps or 0:g} frames/s analysed"
          f"{', metrics at ' + ops.url if ops and ops.url else ''}; Ctrl-C stops)", file=stderr)
    try:
        with stop_on_signals() as stop:
            pump(reader, analysis, outbox, metrics, stop, req.duration_s)
    finally:
        reader.stop()
        analysis.finish()
        if (ongoing := reader.open_gap()) is not None:  # stopped while the source was down: a gap too
            outbox.gap(ongoing)
        metrics.count(reader)
        stages.close()
        if writer is not None:
            writer.close()
        drained = sender.finish(req.flush_timeout_s)
        if ops is not None:
            ops.close()
    if reader.error is not None:
        raise reader.error
    summary = metrics.summary(reader, time.monotonic() - started)
    summary.update({"camera": camera, "screening": req.screening, "scene": settings.scene,
                    "scene_reason": scene_reason, "spool": str(spool.path), "spool_left": spool.depth(),
                    "refused": spool.dead(), "drained": drained})
    spool.close()
    print(f"audience live: {summary['frames_analysed']} frames analysed ({summary['analysis_fps']:.2f}/s), "
          f"{summary['frames_dropped']} dropped, {summary['faces']} faces, {summary['reconnects']} reconnects; "
          + ("everything sent" if drained else f"{summary['spool_left']} batches wait in {spool.path} "
             "(sent at the next start)"), file=stderr)
    return summary


def live_source(source: str) -> SourceSpec:
    """The one video, camera or stream URL `source` names."""
    spec = resolve_inputs([source])[0]
    if spec.kind == "image":
        raise UnsupportedInput(f"{source}: live analysis needs a video, a camera or a stream URL")
    return spec


def camera_name(source: str) -> str:
    name = source.split("?")[0].rstrip("/")
    return re.sub(r"[^A-Za-z0-9._:-]+", "_", name.rsplit("/", 1)[-1] if "://" not in name else name)[-120:] or "camera"


def screening_offset(client: ApiClient | DbClient, req: LiveRequest, spool: Spool, key: str, stderr) -> float:
    """The screening's offset to the content timeline: asked of the service and remembered in the spool, so
    that a restart while the service cannot be reached goes on with the remembered one."""
    try:
        offset = client.screening_offset(req.screening, req.content)
    except Unreachable as exc:
        offset = spool.meta(f"{key}/offset")
        if offset is None:
            raise
        print(f"audience live: {exc}; going on with the offset remembered in the spool", file=stderr)
        return offset
    spool.set_meta(f"{key}/offset", offset)
    return offset


def stream_timeline(spool: Spool, key: str) -> tuple[float, int]:
    """A camera or stream URL keeps one timeline (its origin, wall clock) and one id space (the largest id
    used) per screening camera, across restarts: both kept in the spool."""
    origin = spool.meta(f"{key}/origin") or time.time()
    spool.set_meta(f"{key}/origin", origin)
    return origin, int(spool.meta(f"{key}/max_id", 0))


def summary_json(summary: dict) -> str:
    return json.dumps(summary, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
