"""The uplink's client: sends an analysis's per-track-second statistics to a database (`DbClient`, --db)
or to a running service (`ApiClient`, --api), and asks either for a screening's offset to its content.

Both paths are idempotent: a retried or replayed batch is stored once; one that contradicts stored
rows is refused (409) and nothing of it is written.

Errors: PublishError (exit code 8), and its subclass Unreachable when the service could not be reached
at all (the live process then goes on with what its spool remembers)."""
from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from vision.errors import Conflict, Invalid, PublishError, Unreachable, UsageError

BATCH_ROWS = 5000
ARROW = "application/vnd.apache.arrow.stream"


def arrow_batch(camera: str, columns: dict, covered: list[int] | None = None) -> bytes:
    """A statistics batch as an Arrow IPC stream: the columns as typed arrays, camera and covered seconds in
    the schema metadata. No number is formatted as text on either side (JSON encoding was ~40% of ingest)."""
    import numpy as np
    import pyarrow as pa

    from ..store import INT_KEYS, ROW_KEYS

    table = pa.table({k: pa.array(np.asarray(columns[k], np.int64 if k in INT_KEYS else np.float64))
                      for k in ROW_KEYS})
    table = table.replace_schema_metadata({"camera": camera, "covered": json.dumps(covered)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class ApiClient:
    """A running service at `base` (http(s)://host:port), with `api_key` sent as a bearer token (None: an
    open service)."""

    def __init__(self, base: str, api_key: str | None = None, timeout_s: float = 60.0):
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PublishError(f"--api must be an http(s) URL, got {base!r}")
        self.base, self.api_key, self.timeout_s = base, api_key, timeout_s
        self._parts = parts

    @property
    def target(self) -> str:
        """Where the statistics go, as the user named it."""
        return self.base

    def request(self, method: str, path: str, body: dict | bytes | None = None) -> tuple[int, dict]:
        """One HTTP request -> (status, JSON payload); `body` is JSON-encoded, or sent as is (an Arrow
        stream) when it is bytes. Raises Unreachable when no answer comes."""
        parts = self._parts
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(parts.hostname, parts.port, timeout=self.timeout_s)
        try:
            raw = isinstance(body, bytes)
            data = body if raw else json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": ARROW if raw else "application/json"}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            conn.request(method, parts.path.rstrip("/") + path, body=data, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except OSError as exc:
            raise Unreachable(f"cannot reach the API at {self.base} ({exc.strerror or exc})") from None
        finally:
            conn.close()
        try:
            payload = json.loads(text) if text else {}
        except ValueError:
            payload = {"detail": text[:200]}
        return response.status, payload

    def screening_offset(self, screening_id: int, content_id: int | None) -> float:
        """Check the screening exists (and belongs to the content); its offset to the content timeline."""
        status, payload = self.request("GET", f"/api/v1/screenings/{screening_id}")
        if status == 404:
            raise PublishError(f"screening {screening_id} not found at {self.base}")
        if status != 200:
            raise PublishError(f"API {self.base} answered {status}: {payload.get('detail', '')}")
        if content_id is not None and payload["content_id"] != content_id:
            raise PublishError(f"screening {screening_id} belongs to content {payload['content_id']}, "
                               f"not {content_id}")
        return float(payload.get("content_offset_s", 0.0))

    def publish(self, screening_id: int, batches: list[tuple[str, dict]]) -> tuple[int, int]:
        """(camera, per-track-second columns: vision.stats.track_seconds) batches -> (rows inserted, rows
        already stored)."""
        from ..store import second_chunks

        inserted = unchanged = 0
        for camera, columns in batches:
            try:
                chunks = second_chunks(columns, BATCH_ROWS)  # a camera-second is written once, whole
            except Invalid as exc:
                raise PublishError(f"camera {camera}: {exc}") from None
            for chunk in chunks:
                status, payload = self.request("POST", f"/api/v1/screenings/{screening_id}/stats",
                                               arrow_batch(camera, chunk))
                if status != 200:
                    raise PublishError(f"API {self.base} refused a batch ({status}): {payload.get('detail', '')}")
                inserted, unchanged = inserted + payload["inserted"], unchanged + payload["unchanged"]
        return inserted, unchanged


class DbClient:
    """A database the service uses (sqlite:///file.db, postgresql://...), written directly."""

    def __init__(self, url: str):
        self.url = url

    @property
    def target(self) -> str:
        """Where the statistics go, as the user named it."""
        return self.url

    def screening_offset(self, screening_id: int, content_id: int | None) -> float:
        """Check the screening exists (and belongs to the content); its offset to the content timeline."""
        from sqlmodel import Session

        from ..db import make_engine, migrate
        from ..models import Screening

        try:
            engine = make_engine(self.url)
            migrate(engine)
            with Session(engine) as session:
                screening = session.get(Screening, screening_id)
        except Exception as exc:  # noqa: BLE001 - any driver error is one line for the user
            raise PublishError(f"database {self.url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
        if screening is None:
            raise PublishError(f"screening {screening_id} not found in {self.url} (create it with the API first)")
        if content_id is not None and screening.content_id != content_id:
            raise PublishError(f"screening {screening_id} belongs to content {screening.content_id}, not {content_id}")
        return screening.content_offset_s

    def publish(self, screening_id: int, batches: list[tuple[str, dict]]) -> tuple[int, int]:
        """(camera, per-track-second columns: vision.stats.track_seconds) batches -> (rows inserted, rows
        already stored)."""
        from sqlmodel import Session

        from .. import store
        from ..db import make_engine

        inserted = unchanged = 0
        engine = make_engine(self.url)
        with Session(engine) as session:
            for camera, columns in batches:
                try:
                    for chunk in store.second_chunks(columns, BATCH_ROWS):  # a camera-second is written once, whole
                        i, u = store.ingest(session, screening_id, camera, chunk)
                        inserted, unchanged = inserted + i, unchanged + u
                except (Conflict, Invalid) as exc:
                    session.rollback()
                    raise PublishError(f"database {self.url}: {exc}") from None
        return inserted, unchanged


def connect(db: str | None = None, api: str | None = None, api_key: str | None = None) -> ApiClient | DbClient:
    """The database's client if `db` is given, else the service's at `api`."""
    if not (db or api):
        raise UsageError("give --api URL or --db URL")
    return DbClient(db) if db else ApiClient(api, api_key)
