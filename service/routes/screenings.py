from __future__ import annotations

import struct
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlmodel import select

from vision.errors import Conflict, Invalid

from .. import store
from ..deps import SessionDep, get_or_404, save
from ..guard import INGEST_BODY_BYTES
from ..models import (GapIn, GapPublic, IngestResult, Screening, ScreeningCreate, ScreeningPublic, ScreeningUpdate,
                      SourceStateIn, SourceStatePublic, StatsBatch, clean_detail)
from ..uplink.client import ARROW
from .contents import get_content
from .items import item_routes

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
    columns camera, track_id, second, n and the mean of every value."""
    get_screening(session, screening_id)
    return store.track_means(session, screening_id)


def screening_in_path(screening_id: int, session: SessionDep) -> Screening:
    return get_screening(session, screening_id)


item_routes(router, "/{screening_id}", "screening", screening_in_path, ScreeningPublic, ScreeningUpdate,
            store.delete_screening)


MAX_BODY_BYTES = INGEST_BODY_BYTES  # a 50,000-row batch in JSON is about 40 MB


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
    """An Arrow IPC stream: the row keys as columns; `camera` and `covered` (JSON) in the schema metadata.
    Before any batch is decompressed its declared row count and buffer sizes are summed: a stream over
    `store.MAX_ROWS` rows, or whose buffers would decompress past what that many rows need, is refused."""
    import json

    import pyarrow as pa

    def invalid(reason: str):
        return RequestValidationError([{"type": "arrow", "loc": ("body",), "msg": reason}])

    try:
        table = _read_bounded(pa.py_buffer(body))
    except _TooBig as exc:
        raise invalid(str(exc)) from None
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError, struct.error) as exc:
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


class _TooBig(ValueError):
    pass


MAX_DECODED_BYTES = store.MAX_ROWS * len(store.ROW_KEYS) * 9  # 8-byte values and a validity bit per row


def _read_bounded(buffer):
    """The stream as a table, refusing (_TooBig) before decompression what would exceed the caps."""
    import pyarrow as pa

    reader = pa.ipc.MessageReader.open_stream(buffer)
    schema = pa.ipc.read_schema(reader.read_next_message())
    if len(schema) > len(store.ROW_KEYS) or not all(pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                                                    for f in schema):
        raise _TooBig(f"at most {len(store.ROW_KEYS)} columns, all plain integers or floats")
    batches, rows, decoded = [], 0, 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        if message.type != "record batch":
            raise _TooBig(f"only record batches may follow the schema, not a {message.type}")
        body = memoryview(message.body) if message.body is not None else b""  # no copy: a few 8-byte reads
        length, sizes = _batch_sizes(message.metadata.to_pybytes(), body)
        rows, decoded = rows + length, decoded + sum(sizes)
        if rows > store.MAX_ROWS:
            raise _TooBig(f"a batch holds at most {store.MAX_ROWS:,} rows; split it")
        if decoded > MAX_DECODED_BYTES:
            raise _TooBig(f"the stream would decompress to over {MAX_DECODED_BYTES:,} bytes")
        batches.append(pa.ipc.read_record_batch(message, schema))
    return pa.Table.from_batches(batches, schema)


def _batch_sizes(meta: bytes, body) -> tuple[int, list[int]]:
    """From a RecordBatch message's flatbuffer (Message.header -> RecordBatch {length, nodes, buffers,
    compression}): its row count and each buffer's size once decompressed (a compressed buffer starts with
    its decompressed length, -1 when stored plain)."""
    def field(table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", meta, table)[0]
        if 4 + 2 * index >= struct.unpack_from("<H", meta, vtable)[0]:
            return None
        offset = struct.unpack_from("<H", meta, vtable + 4 + 2 * index)[0]
        return table + offset if offset else None

    def indirect(position: int) -> int:
        return position + struct.unpack_from("<I", meta, position)[0]

    header = field(struct.unpack_from("<I", meta, 0)[0], 2)
    if header is None:
        raise ValueError("record batch without a header")
    batch = indirect(header)
    at = field(batch, 0)
    length = struct.unpack_from("<q", meta, at)[0] if at is not None else 0
    if length < 0:
        raise ValueError("negative row count")
    sizes = []
    at = field(batch, 2)
    compressed = field(batch, 3) is not None
    if at is not None:
        vector = indirect(at)
        for i in range(struct.unpack_from("<I", meta, vector)[0]):
            offset, size = struct.unpack_from("<qq", meta, vector + 4 + 16 * i)
            if offset < 0 or size < 0 or offset + size > len(body):
                raise ValueError("a buffer lies outside the message body")
            declared = struct.unpack_from("<q", body, offset)[0] if compressed and size >= 8 else -1
            sizes.append(size if declared < 0 else declared)
    return length, sizes


STATS_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": StatsBatch.model_json_schema()},
    ARROW: {"schema": {"type": "string", "format": "binary",
                       "description": "the same columns as an Arrow IPC stream (int64 track_id, second, n; float64 "
                                      "sums), with 'camera' and 'covered' (JSON) in the schema metadata"}}}}}


def _rows_as_columns(rows: list[dict]) -> dict[str, list]:
    """The API's row form of a batch (a list of objects: kept for clients that send it) -> its columns,
    the one form the store ingests."""
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise Invalid(f"row {i}: must be an object")
        missing = [k for k in store.ROW_KEYS if k not in row]
        if missing:
            raise Invalid(f"row {i}: missing {', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}")
        extra = set(row) - set(store.ROW_KEYS) - {"camera"}
        if extra:
            raise Invalid(f"row {i}: unknown fields {', '.join(sorted(extra)[:5])}")
    return {k: [row[k] for row in rows] for k in store.ROW_KEYS}


@router.post("/{screening_id}/stats", response_model=IngestResult, openapi_extra=STATS_BODY)
def ingest_stats(screening_id: int, body: Annotated[StatsBatch, Depends(stats_batch)], session: SessionDep,
                 request: Request):
    """Per-track-second statistics of one camera. Idempotent: a replayed batch changes nothing;
    a batch contradicting stored rows is refused with 409 and nothing of it is written."""
    get_screening(session, screening_id)
    try:
        if (body.columns is None) == (body.rows is None):
            raise Invalid("give exactly one of columns and rows")
        columns = body.columns if body.columns is not None else _rows_as_columns(body.rows)
        inserted, unchanged = store.retrying(
            session, lambda: store.ingest(session, screening_id, body.camera, columns, body.covered))
    except Invalid as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    except Conflict as exc:
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
    except Invalid as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    return GapPublic(screening_id=screening_id, **body.model_dump())


@router.get("/{screening_id}/gaps", response_model=list[GapPublic])
def list_gaps(screening_id: int, session: SessionDep):
    get_screening(session, screening_id)
    return store.gaps(session, [screening_id])


@router.put("/{screening_id}/sources/{camera}", response_model=SourceStatePublic)
def report_source(screening_id: int, camera: Annotated[str, Path(min_length=1, max_length=300)], body: SourceStateIn,
                  session: SessionDep):
    """A live process's heartbeat for one camera: its state and figures."""
    get_screening(session, screening_id)
    store.retrying(session, lambda: store.set_source_state(session, screening_id, camera, body.state, body.detail))
    return public_states(session, screening_id, camera)[0]


@router.get("/{screening_id}/sources", response_model=list[SourceStatePublic])
def list_sources(screening_id: int, session: SessionDep):
    """Each live source of the screening as last reported; `stale` when it has not reported for 30 s."""
    get_screening(session, screening_id)
    return public_states(session, screening_id)


def public_states(session, screening_id: int, camera: str | None = None) -> list[dict]:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    out = []
    for row in store.source_states(session, screening_id):
        if camera is not None and row["camera"] != camera:
            continue
        updated = row["updated_at"] if row["updated_at"].tzinfo else row["updated_at"].replace(tzinfo=timezone.utc)
        out.append({**row, "detail": clean_detail(row["detail"]), "updated_at": updated,
                    "stale": (now - updated).total_seconds() > STALE_AFTER_S})
    return out


STALE_AFTER_S = 30.0
