"""API keys: scopes (read, ingest, admin), optionally limited to contents, stored hashed.

A key is `aud_` + 43 random URL-safe characters (256 bits), shown once when created; the database keeps
its SHA-256 (a random key of that length needs no slow hash) and its first characters to tell keys apart
in listings. Requests carry it as `Authorization: Bearer <key>` (or `X-API-Key`; the live event stream,
which browsers open without headers, also takes `?access_token=`).

With no active key the service is open: `audience serve` allows that on loopback only (the demo, one
researcher's machine) and refuses any other address until a key exists. Once a key exists, every API
request needs one. What each request needs is decided in one place, `required_scopes`.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import HTTPException, Request
from sqlmodel import JSON, Field, Session, SQLModel, select

SCOPES = ("read", "ingest", "admin")


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    scopes: list[str] = Field(sa_type=JSON)
    contents: list[int] | None = Field(default=None, sa_type=JSON)  # None: every content
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    revoked_at: datetime | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, scopes: list[str], contents: list[int] | None = None) -> tuple[ApiKey, str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
    secret = "aud_" + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=secret[:10], key_hash=hash_key(secret), scopes=sorted(set(scopes)),
                 contents=sorted(set(contents)) if contents else None)
    session.add(key)
    session.commit()
    session.refresh(key)
    return key, secret


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(ApiKey.id)).all())


def revoke_key(session: Session, key_id: int) -> ApiKey | None:
    key = session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = datetime.now(timezone.utc)
        session.add(key)
        session.commit()
        session.refresh(key)
    return key


def active_keys(session: Session) -> int:
    return len(session.exec(select(ApiKey.id).where(ApiKey.revoked_at.is_(None))).all())


@dataclass(frozen=True)
class Principal:
    scopes: frozenset
    contents: frozenset | None  # None: every content
    key_id: int | None = None  # None: an open service (no keys configured)

    def allows(self, wanted: set[str]) -> bool:
        return "admin" in self.scopes or bool(self.scopes & wanted)

    def sees(self, content_id: int) -> bool:
        return self.contents is None or content_id in self.contents


OPEN = Principal(frozenset(SCOPES), None)


def required_scopes(method: str, path: str) -> set[str]:
    """Any one of these scopes lets the request through (admin always does). `path` is the route's
    template under /api/v1."""
    if path.endswith("/tracks"):
        return {"admin"}  # per-track data
    if method == "POST" and path.endswith(("/stats", "/gaps")) or method == "PUT" and "/sources/" in path:
        return {"ingest"}
    if method == "GET" and path == "/screenings/{screening_id}":
        return {"read", "ingest"}  # an ingest client checks its screening (offset, content)
    if method == "GET":
        return {"read"}
    return {"admin"}


class Keys:
    """Per app: whether keys are configured (re-read every few seconds: `audience keys` runs elsewhere)."""

    def __init__(self, engine, recheck_s: float = 2.0):
        self.engine, self.recheck_s = engine, recheck_s
        self._active, self._checked = 0, -1e9

    def configured(self) -> bool:
        if time.monotonic() - self._checked > self.recheck_s:
            with Session(self.engine) as session:
                self._active = active_keys(session)
            self._checked = time.monotonic()
        return self._active > 0

    def principal(self, token: str | None) -> Principal:
        if not self.configured():
            return OPEN
        if not token:
            raise HTTPException(401, "an API key is required (Authorization: Bearer <key>); "
                                     "create one with `audience keys create`", headers={"WWW-Authenticate": "Bearer"})
        with Session(self.engine) as session:
            key = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(token))).first()
        if key is None or key.revoked_at is not None:
            raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        return Principal(frozenset(key.scopes), frozenset(key.contents) if key.contents else None, key.id)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if request.headers.get("x-api-key"):
        return request.headers["x-api-key"].strip()
    route = request.scope.get("route")
    if getattr(route, "path", "").endswith("/live"):
        return request.query_params.get("access_token")
    return None


def authorize(request: Request) -> Principal:
    """The API router's dependency: who is asking, whether the route's scope allows it, and whether the
    content it touches is among the key's contents (answered as 404, as if it did not exist)."""
    principal = request.app.state.keys.principal(_token(request))
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    wanted = required_scopes(request.method, path)
    if not principal.allows(wanted):
        raise HTTPException(403, f"this API key lacks the {' or '.join(sorted(wanted))} scope")
    if principal.contents is not None:
        if request.method == "POST" and path == "/contents":
            raise HTTPException(403, "a key limited to some contents cannot create contents")
        content_id = request.path_params.get("content_id")
        if content_id is None and "screening_id" in request.path_params:
            from .models import Screening

            with Session(request.app.state.engine) as session:
                raw = request.path_params["screening_id"]
                screening = session.get(Screening, int(raw)) if str(raw).isascii() and str(raw).isdigit() else None
            content_id = screening.content_id if screening is not None else None
        try:
            content_id = int(content_id) if content_id is not None else None
        except ValueError:  # not an id: the route answers 422
            content_id = None
        if content_id is not None and not principal.sees(content_id):
            what = "content" if "content_id" in request.path_params else "screening"
            raise HTTPException(404, f"{what} {request.path_params.get(what + '_id')} not found")
    request.state.principal = principal
    return principal
