"""What the service checks before a request reaches a route, and what every answer carries.

`Limits` holds the settings (all documented in the README, set by `audience serve` flags); `Guard` is a
plain ASGI middleware that, for every HTTP request:

- answers 401/403 **before any body is read** on API requests that carry one (an unauthenticated 120 MB
  POST is refused on its headers), and on `/metrics` (admin scope by default) and the API docs (open by
  default) as `Limits` says;
- times out a body that arrives too slowly (408);
- adds a Content-Security-Policy that forbids inline script to every response (the Swagger UI page, whose
  one inline script is FastAPI's, gets that script's sha256 in its policy, nothing more), and
  `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.

- caps every request body at `Limits.max_body_bytes` (an ingest batch at 64 MB): 413 on the declared
  Content-Length before reading, or as soon as a body without one passes the cap.

`LiveStreams` bounds the open event streams per key.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Literal

import anyio
from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/api/v1"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
INLINE_SCRIPT_PAGES = ("/docs", "/docs/oauth2-redirect")  # FastAPI's pages: their inline script is hashed
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
INGEST = re.compile(r"^/api/v1/screenings/[^/]+/stats$")  # the route with its own, larger cap
INGEST_BODY_BYTES = 64 * 2 ** 20  # a 50,000-row batch in JSON is about 40 MB
INGEST = re.compile(r"^/api/v1/screenings/[^/]+/stats$")  # the route with its own, larger cap

CSP = ("default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Limits:
    """Resource and exposure settings of the service (see README, "Privacy and security")."""

    max_body_bytes: int = 2 ** 20  # every request body except an ingest batch (which has its own 64 MB cap)
    body_timeout_s: float = 30.0  # a body whose next chunk takes longer is answered 408
    live_streams_per_key: int = 4  # open event streams per API key (or, with no keys, in all)
    live_key_recheck_s: float = 5.0  # an open stream ends this soon after its key is revoked
    metrics: Literal["admin", "open"] = "admin"  # /metrics once keys exist: an admin key, or anyone
    docs: Literal["open", "key"] = "open"  # /docs, /redoc, /openapi.json once keys exist

    def __post_init__(self):
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if self.live_streams_per_key < 1 or self.body_timeout_s <= 0 or self.live_key_recheck_s <= 0:
            raise ValueError("live_streams_per_key, body_timeout_s and live_key_recheck_s must be positive")
        if self.metrics not in ("admin", "open") or self.docs not in ("open", "key"):
            raise ValueError("metrics is 'admin' or 'open'; docs is 'open' or 'key'")


def request_token(headers: Headers) -> str | None:
    """The key a request carries in a header (Bearer or X-API-Key), as `service.auth` reads it."""
    header = headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return headers.get("x-api-key", "").strip() or None


def _needs(path: str, method: str, limits: Limits) -> set[str] | None:
    """The scopes checked before the route runs (any one will do; empty: any valid key), or None."""
    if path.startswith(API_PREFIX + "/") and method in BODY_METHODS:
        return set()  # the route's own check (scope, contents) follows once the body is read
    if path == "/metrics" and limits.metrics == "admin":
        return {"admin"}
    if limits.docs == "key" and (path in DOCS_PATHS or path.startswith("/static-offline-docs/")):
        return set()
    return None


class Guard:
    """The ASGI middleware described in the module docstring. `keys` is the app's `service.auth.Keys`."""

    def __init__(self, app: ASGIApp, keys, limits: Limits):
        self.app, self.keys, self.limits = app, keys, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        wanted = _needs(scope["path"], scope["method"], self.limits)
        if wanted is not None:  # the key first: an unauthenticated body is never read, whatever its size
            refusal = await self._refusal(headers, wanted)
            if refusal is not None:
                await _send_json(send, *refusal)
                return
        cap = INGEST_BODY_BYTES if INGEST.match(scope["path"]) else self.limits.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _send_json(send, 413, f"request body too large ({int(declared):,} bytes; at most {cap:,})", {})
            return
        await self.app(scope, self._bounded(receive, cap), _with_policy(scope["path"], send))

    async def _refusal(self, headers: Headers, wanted: set[str]):
        try:
            principal = await run_in_threadpool(self.keys.principal, request_token(headers))
        except HTTPException as exc:
            return exc.status_code, exc.detail, exc.headers or {}
        if wanted and not principal.allows(wanted):
            return 403, f"this API key lacks the {' or '.join(sorted(wanted))} scope", {}
        return None

    def _bounded(self, receive: Receive, cap: int) -> Receive:
        """`receive` counting the body against `cap` (413; also without a Content-Length) and with a deadline
        on each chunk (408), until the body is complete (not on waiting for a disconnect later)."""
        done, total = False, 0
        timeout = self.limits.body_timeout_s

        async def bounded() -> Message:
            nonlocal done, total
            if done:
                return await receive()
            try:
                with anyio.fail_after(timeout):  # a cancel scope: no task per chunk, unlike asyncio.wait_for
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, f"the request body stalled for over {timeout:g} s") from None
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > cap:
                    raise HTTPException(413, f"request body too large (over {cap:,} bytes)")
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        return bounded


async def _send_json(send: Send, status: int, detail, headers: dict) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    response = MutableHeaders(raw=raw)
    _secure(response, CSP.format(hashes=""))
    await send({"type": "http.response.start", "status": status, "headers": response.raw})
    await send({"type": "http.response.body", "body": body})


def _secure(headers: MutableHeaders, policy: str) -> None:
    headers.setdefault("content-security-policy", policy)
    headers.setdefault("x-content-type-options", "nosniff")
    headers.setdefault("referrer-policy", "no-referrer")


_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def _with_policy(path: str, send: Send) -> Send:
    """`send` adding the security headers; on FastAPI's doc pages the inline script's hash joins the policy
    (those pages are small and sent whole, so their body is held until it is complete)."""
    if path not in INLINE_SCRIPT_PAGES:
        async def plain(message: Message) -> None:
            if message["type"] == "http.response.start":
                _secure(MutableHeaders(scope=message), CSP.format(hashes=""))
            await send(message)

        return plain
    held: list[Message] = []

    async def hashing(message: Message) -> None:
        if message["type"] == "http.response.start" or message["type"] == "http.response.body" and \
                message.get("more_body", False):
            held.append(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        start, parts = held[0], [m.get("body", b"") for m in held[1:]] + [message.get("body", b"")]
        page = b"".join(parts)
        hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'"
                         for s in _SCRIPT.findall(page))
        _secure(MutableHeaders(scope=start), CSP.format(hashes=hashes))
        await send(start)
        await send({"type": "http.response.body", "body": page})

    return hashing


class LiveStreams:
    """How many event streams each key has open; `open(key_id)` refuses (429) past the limit."""

    def __init__(self, per_key: int):
        self.per_key = per_key
        self._open: dict[int | None, int] = {}
        self._lock = threading.Lock()

    def open(self, key_id: int | None) -> "_Slot":
        with self._lock:
            if self._open.get(key_id, 0) >= self.per_key:
                raise HTTPException(429, f"this API key already follows {self.per_key} live streams (the limit); "
                                         "close one first", headers={"Retry-After": "5"})
            self._open[key_id] = self._open.get(key_id, 0) + 1
        return _Slot(self, key_id)

    def count(self, key_id: int | None) -> int:
        return self._open.get(key_id, 0)

    def _close(self, key_id: int | None) -> None:
        with self._lock:
            self._open[key_id] -= 1
            if not self._open[key_id]:
                del self._open[key_id]


class _Slot:
    """One open stream; `close()` may be called more than once."""

    def __init__(self, streams: LiveStreams, key_id: int | None):
        self.streams, self.key_id, self.closed = streams, key_id, False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.streams._close(self.key_id)
