from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlmodel import select

from .. import store
from ..deps import SessionDep, get_or_404, save
from ..models import (GapIn, GapPublic, IngestResult, Screening, ScreeningCreate, ScreeningPublic, ScreeningUpdate,
                      SourceStateIn, SourceStatePublic, StatsBatch)
from ..publish import ARROW
from .contents import get_content

router = APIRouter(prefix="/screenings", tags=["screenings"])


def get_screening(session, screening_id: int) -> Screening:
    return get_or_404(session, Screening, screening_id, "screening")


@router.post("", response_model=ScreeningPublic, status_code=201)
def create_screening(body: ScreeningCreate, session: SessionDep, request: Request):
    if not request.state.principal.sees(body.content_id):
        raise HTTPException(404, f"content {body.content_id} not found")
    get_content(session, body.content_id)
    return save(session, Screening.model_validate(body))


@router.get("", response_model=list[ScreeningPublic])
def list_screenings(session: SessionDep, request: Request, content_id: int | None = None):
    query = select(Screening).order_by(Screening.id)
    if content_id is not None:
        query = query.where(Screening.content_id == content_id)
    principal = request.state.principal
    return [s for s in session.exec(query).all() if principal.sees(s.content_id)]


@router.get("/{screening_id}/tracks")
def list_tracks(screening_id: int, session: SessionDep):
    """Per-track, per-second statistics of the screening (anonymous track ids; admin scope only):
    columns camera, track_id, second, n, n_read and the mean of every value."""
    get_screening(session, screening_id)
    return store.track_means(session, screening_id)


@router.get("/{screening_id}", response_model=ScreeningPublic)
def read_screening(screening_id: int, session: SessionDep):
    return get_screening(session, screening_id)


@router.patch("/{screening_id}", response_model=ScreeningPublic)
def update_screening(screening_id: int, body: ScreeningUpdate, session: SessionDep):
    item = get_screening(session, screening_id)
    item.sqlmodel_update(body.model_dump(exclude_unset=True))
    return save(session, item)


@router.delete("/{screening_id}", status_code=204)
def delete_screening(screening_id: int, session: SessionDep):
    store.delete_screening(session, get_screening(session, screening_id))


MAX_BODY_BYTES = 64 * 2 ** 20  # a 50,000-row batch in JSON is about 40 MB


async def stats_batch(request: Request) -> StatsBatch:
    """The batch parsed straight from the JSON bytes by pydantic-core: a 5,000-row batch holds ~200,000
    numbers and this is 2-3x faster than json.loads followed by validation. Bodies over 64 MB: 413."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"batch too large ({int(declared):,} bytes; at most {MAX_BODY_BYTES:,}): send "
                                 f"at most {store.MAX_ROWS:,} rows per batch")
    body = bytearray()
    async for chunk in request.stream():  # also bounded without a Content-Length (chunked uploads)
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"batch too large (over {MAX_BODY_BYTES:,} bytes): send at most "
                                     f"{store.MAX_ROWS:,} rows per batch")
    if request.headers.get("content-type", "").split(";")[0].strip() == ARROW:
        return _arrow_batch(bytes(body))
    try:
        return StatsBatch.model_validate_json(bytes(body))
    except ValidationError as exc:
        # type, place and message only: the offending input may be a NaN or megabytes, neither fit to echo
        raise RequestValidationError([{"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]}
                                      for e in exc.errors(include_url=False)]) from None


def _arrow_batch(body: bytes) -> StatsBatch:
    """An Arrow IPC stream: the row keys as columns; `camera` and `covered` (JSON) in the schema metadata."""
    import json

    import pyarrow as pa

    def invalid(reason: str):
        return RequestValidationError([{"type": "arrow", "loc": ("body",), "msg": reason}])

    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise invalid(f"not an Arrow IPC stream ({str(exc)[:120]})") from None
    meta = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (table.schema.metadata or {}).items()}
    camera = meta.get("camera", "")
    if not 1 <= len(camera) <= 300:
        raise invalid("the stream's metadata must name the camera (1-300 characters)")
    try:
        covered = json.loads(meta.get("covered", "null"))
        if covered is not None and not (isinstance(covered, list) and all(isinstance(c, int) for c in covered)):
            raise ValueError
    except ValueError:
        raise invalid("metadata 'covered' must be a JSON list of whole seconds or null") from None
    try:
        columns = {name: table.column(name).to_numpy() for name in table.column_names}
    except (pa.ArrowException, ValueError) as exc:
        raise invalid(f"columns must be plain numbers ({str(exc)[:120]})") from None
    return StatsBatch.model_construct(camera=camera, columns=columns, rows=None, covered=covered)


STATS_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": StatsBatch.model_json_schema()},
    ARROW: {"schema": {"type": "string", "format": "binary",
                       "description": "the same columns as an Arrow IPC stream (int64 track_id, second, n, "
                                      "n_read (optional: n); float64 sums), with 'camera' and 'covered' (JSON) in the schema metadata"}}}}}


@router.post("/{screening_id}/stats", response_model=IngestResult, openapi_extra=STATS_BODY)
def ingest_stats(screening_id: int, body: Annotated[StatsBatch, Depends(stats_batch)], session: SessionDep,
                 request: Request):
    """Per-track-second statistics of one camera. Idempotent: a replayed batch changes nothing;
    a batch contradicting stored rows is refused with 409 and nothing of it is written."""
    get_screening(session, screening_id)
    try:
        if (body.columns is None) == (body.rows is None):
            raise store.Invalid("give exactly one of columns and rows")
        columns = body.columns if body.columns is not None else store.rows_to_columns(body.rows)
        inserted, unchanged = store.retrying(
            session, lambda: store.ingest(session, screening_id, body.camera, columns, body.covered))
    except store.Invalid as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    except store.Conflict as exc:
        session.rollback()
        raise HTTPException(409, str(exc)) from None
    counter = request.app.state.metrics.ingested
    counter.labels("inserted").inc(inserted)
    counter.labels("unchanged").inc(unchanged)
    return IngestResult(inserted=inserted, unchanged=unchanged)


@router.post("/{screening_id}/gaps", response_model=GapPublic, status_code=201)
def add_gap(screening_id: int, body: GapIn, session: SessionDep):
    """Record that a camera delivered nothing between start_s and end_s (content time): those seconds are
    missing from the curve, not zero. Idempotent (keyed by camera and start)."""
    get_screening(session, screening_id)

    try:
        store.retrying(session, lambda: store.add_gap(session, screening_id, body.camera, body.start_s, body.end_s,
                                                      body.reason))
    except store.Invalid as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    return GapPublic(screening_id=screening_id, **body.model_dump())


@router.get("/{screening_id}/gaps", response_model=list[GapPublic])
def list_gaps(screening_id: int, session: SessionDep):
    get_screening(session, screening_id)
    return store.gaps(session, [screening_id])


@router.put("/{screening_id}/sources/{camera}", response_model=SourceStatePublic)
def report_source(screening_id: int, camera: str, body: SourceStateIn, session: SessionDep):
    """A live process's heartbeat for one camera: its state and figures."""
    get_screening(session, screening_id)

    store.retrying(session, lambda: store.set_source_state(session, screening_id, camera, body.state, body.detail))
    return _public_states(session, screening_id, camera)[0]


@router.get("/{screening_id}/sources", response_model=list[SourceStatePublic])
def list_sources(screening_id: int, session: SessionDep):
    """Each live source of the screening as last reported; `stale` when it has not reported for 30 s."""
    get_screening(session, screening_id)
    return _public_states(session, screening_id)


def _public_states(session, screening_id: int, camera: str | None = None) -> list[dict]:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    out = []
    for row in store.source_states(session, screening_id):
        if camera is not None and row["camera"] != camera:
            continue
        updated = row["updated_at"] if row["updated_at"].tzinfo else row["updated_at"].replace(tzinfo=timezone.utc)
        out.append({**row, "updated_at": updated, "stale": (now - updated).total_seconds() > STALE_AFTER_S})
    return out


STALE_AFTER_S = 30.0
