"""API keys: scopes (read, ingest, admin), optionally limited to contents, stored hashed.

A key is `aud_` + 43 random URL-safe characters (256 bits), shown once when created; the database keeps
its SHA-256 (a random key of that length needs no slow hash) and its first characters to tell keys apart
in listings. Requests carry it as `Authorization: Bearer <key>` (or `X-API-Key`; the live event stream,
which browsers open without headers, also takes `?access_token=`).

Before the first key is created the service is open: `audience serve` allows that on loopback only (the
demo, one researcher's machine) and refuses any other address. Creating the first key closes the service
(`AuthState.keys_required`, set in the same transaction as the key) and it stays closed: revoking every
key leaves a service nobody can use, never an open one, until an operator explicitly reopens it
(`audience keys reopen`, recorded with its time and reason). A server bound to a non-loopback address
never answers as an open service, whatever happens to the keys while it runs. What each request needs is
decided in one place, `required_scopes`.

Content limits are checked on the ids the route will use: path ids must be canonical decimal numbers
(`1`, not `+1`, `1.0`, ` 1`, `0_1` or `１`, which FastAPI would also read as 1), and an id that cannot be
resolved to a content fails closed.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import HTTPException, Request
from sqlmodel import JSON, Field, Session, SQLModel, select

SCOPES = ("read", "ingest", "admin")
log = logging.getLogger("audience.auth")
_ID = re.compile(r"[0-9]{1,18}")  # a path id as the API writes it: ASCII digits only, fits in 64 bits


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    __table_args__ = {"sqlite_autoincrement": True}  # a revoked key's id is never given to another
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    scopes: list[str] = Field(sa_type=JSON)
    contents: list[int] | None = Field(default=None, sa_type=JSON)  # None: every content
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    revoked_at: datetime | None = None


class AuthState(SQLModel, table=True):
    """One row: whether the service requires keys. Set when the first key is created, cleared only by an
    explicit `reopen`; revoking keys never clears it."""

    __tablename__ = "auth_state"
    id: int = Field(default=1, primary_key=True)
    keys_required: bool = False
    changed_at: datetime | None = None
    reason: str = Field(default="", max_length=500)


def keys_required(session: Session) -> bool:
    state = session.get(AuthState, 1)
    return bool(state and state.keys_required)


def set_required(session: Session, required: bool, reason: str) -> None:
    state = session.get(AuthState, 1) or AuthState(id=1)
    state.keys_required, state.changed_at, state.reason = required, datetime.now(timezone.utc), reason
    session.add(state)


def reopen(session: Session, reason: str) -> None:
    """The explicit decision to run without keys again (loopback only). Refused while a key is active."""
    if active_keys(session):
        raise ValueError("active keys exist: revoke them first")
    if not reason.strip():
        raise ValueError("say why the service may run without keys (--reason)")
    set_required(session, False, f"reopened: {reason.strip()}")
    session.commit()
    log.warning("API keys no longer required: %s", reason.strip())


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
    if not keys_required(session):
        set_required(session, True, f"key {secret[:10]}… created")
    session.commit()  # the key and the closed state together: no moment with a key and an open service
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

    def sees(self, content_id: int | None) -> bool:
        """Whether this key may see the content; an unresolved content (None) only for unlimited keys."""
        return self.contents is None or (content_id is not None and content_id in self.contents)


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
    """Per app: who a token is. The open/closed state is read from the database on every request that
    has no valid key (`audience keys` runs in another process); nothing about it is cached, so a key
    created elsewhere closes the service at once and revoking keys never reopens it.
    `public`: the server listens on a non-loopback address, where an open service is never allowed."""

    def __init__(self, engine, public: bool = False):
        self.engine, self.public = engine, public

    def principal(self, token: str | None) -> Principal:
        with Session(self.engine) as session:
            key = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(token))).first() if token else None
            if key is not None and key.revoked_at is None:
                return Principal(frozenset(key.scopes), frozenset(key.contents) if key.contents else None, key.id)
            required = keys_required(session) or active_keys(session) > 0
        if required:
            if not token:
                raise HTTPException(401, "an API key is required (Authorization: Bearer <key>); "
                                         "create one with `audience keys create`",
                                    headers={"WWW-Authenticate": "Bearer"})
            raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if self.public:
            raise HTTPException(401, "this server listens on a non-loopback address and has no API key: create one "
                                     "with `audience keys create`", headers={"WWW-Authenticate": "Bearer"})
        return OPEN


def bearer_token(request: Request) -> str | None:
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
    principal = request.app.state.keys.principal(bearer_token(request))
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    wanted = required_scopes(request.method, path)
    if not principal.allows(wanted):
        raise HTTPException(403, f"this API key lacks the {' or '.join(sorted(wanted))} scope")
    ids = {name: _path_id(name, value) for name, value in request.path_params.items() if name.endswith("_id")}
    if principal.contents is not None:
        if request.method == "POST" and path == "/contents":
            raise HTTPException(403, "a key limited to some contents cannot create contents")
        if "content_id" in ids:
            content_id = ids["content_id"]
        elif "screening_id" in ids:
            content_id = _content_of_screening(request.app.state.engine, ids["screening_id"])
        else:
            content_id = None
        if ids and not principal.sees(content_id):  # an id that resolves to no content fails closed
            what = "content" if "content_id" in ids else "screening"
            raise HTTPException(404, f"{what} {ids[what + '_id']} not found")
    request.state.principal = principal
    return principal


def _path_id(name: str, raw) -> int:
    """A path id as the route will read it, or 422: only canonical decimal numbers are ids, so the id
    checked here is the id the route uses (FastAPI alone would also read `+1`, `1.0`, ` 1`, `0_1` as 1)."""
    if not isinstance(raw, str) or not _ID.fullmatch(raw):
        raise HTTPException(422, f"{name} must be a decimal number (digits 0-9 only), got {str(raw)[:40]!r}")
    return int(raw)


def _content_of_screening(engine, screening_id: int) -> int | None:
    from .models import Screening

    with Session(engine) as session:
        screening = session.get(Screening, screening_id)
    return screening.content_id if screening is not None else None
