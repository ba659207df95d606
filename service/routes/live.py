"""Following a running screening: its curve as Server-Sent Events, growing as batches arrive."""
from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from .. import store
from ..auth import bearer_token
from ..models import Screening
from .curves import METRICS_QUERY, parse_metrics
from .screenings import public_states

router = APIRouter(tags=["live"])

KEEPALIVE_S = 15.0


def _snapshot(engine, screening_id: int, metrics: list[str], min_tracks: int) -> dict:
    with Session(engine) as session:
        screening = session.get(Screening, screening_id)
        if screening is None:
            raise HTTPException(404, f"screening {screening_id} not found")
        return {"revision": store.revision(session, screening.content_id),
                "curve": store.curves(session, [screening_id], metrics, 1, None, min_tracks),
                "sources": public_states(session, screening_id),
                "gaps": store.gaps(session, [screening_id])}


def _changed_points(curve: dict, metrics: list[str], sent: dict) -> dict:
    """The points of `curve` not yet sent with these values (new seconds, and seconds that grew)."""
    out = {"t": [], "n": [], "suppressed": [], "mean": {m: [] for m in metrics}, "ci95": {m: [] for m in metrics}}
    for i, t in enumerate(curve["t"]):
        value = (curve["n"][i], curve["suppressed"][i], *(curve["mean"][m][i] for m in metrics),
                 *(curve["ci95"][m][i] for m in metrics))
        if sent.get(t) == value:
            continue
        sent[t] = value
        out["t"].append(t)
        out["n"].append(curve["n"][i])
        out["suppressed"].append(curve["suppressed"][i])
        for m in metrics:
            out["mean"][m].append(curve["mean"][m][i])
            out["ci95"][m].append(curve["ci95"][m][i])
    return out


def _event(name: str, payload) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, default=str)}\n\n"


@router.get("/screenings/{screening_id}/live", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def follow_screening(screening_id: int, request: Request, metrics: str = METRICS_QUERY,
                           interval: float = Query(1.0, ge=0.5, le=60, description="seconds between checks")):
    """Server-Sent Events while the screening runs: `points` (per-second t, n, mean and 95% CI of the
    metrics; first everything stored, then the seconds that are new or changed; a second changes only by
    whole camera-seconds of at least the minimum audience size, as each is written once), `sources` (each live
    camera's state when it changes) and `gaps` (stretches a camera delivered nothing: missing, not zero).
    A key holds a few streams at once (429 past that); a stream ends with an `error` event soon after its
    key is revoked."""
    engine = request.app.state.engine
    names = parse_metrics(metrics)
    k = request.app.state.min_audience
    first = await run_in_threadpool(_snapshot, engine, screening_id, names, k)  # 404 before the stream starts
    token, keys, recheck_s = bearer_token(request), request.app.state.keys, request.app.state.limits.live_key_recheck_s
    slot = request.app.state.live_streams.open(request.state.principal.key_id)

    async def events():
        try:
            async for event in _stream():
                yield event
        finally:
            slot.close()

    async def _stream():
        snap, revision, sent, sources, gaps, quiet, unchecked = first, None, {}, None, None, 0.0, 0.0
        while True:
            if snap["revision"] != revision:
                revision = snap["revision"]
                points = _changed_points(snap["curve"], names, sent)
                if points["t"] or not sent:
                    yield _event("points", points)
                    quiet = 0.0
            state = [{k: v for k, v in s.items() if k != "updated_at"} for s in snap["sources"]]
            if state != sources:
                sources = state
                yield _event("sources", snap["sources"])
                quiet = 0.0
            if snap["gaps"] != gaps:
                gaps = snap["gaps"]
                yield _event("gaps", gaps)
                quiet = 0.0
            if quiet >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet = 0.0
            await asyncio.sleep(interval)
            quiet += interval
            unchecked += interval
            if await request.is_disconnected():
                return
            if unchecked >= recheck_s:  # the key may have been revoked since the stream opened
                unchecked = 0.0
                try:
                    await run_in_threadpool(keys.principal, token)
                except HTTPException as exc:
                    yield _event("error", {"status": exc.status_code, "detail": exc.detail})
                    return
            snap = await run_in_threadpool(_snapshot, engine, screening_id, names, k)

    return StreamingResponse(events(), media_type="text/event-stream", background=BackgroundTask(slot.close),
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
