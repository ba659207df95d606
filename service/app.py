"""The FastAPI application: `create_app(engine)`; routes under /api/v1, documented in OpenAPI."""
from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine

from .auth import Keys, authorize
from .cache import AnswerCache
from .db import migrate
from .guard import Guard, Limits, LiveStreams
from .metrics import ServiceMetrics
from .routes import contents, curves, dashboard, live, model, screenings


DEFAULT_MIN_AUDIENCE = 5


def create_app(engine: Engine, min_audience: int = DEFAULT_MIN_AUDIENCE, limits: Limits = Limits(),
               public: bool = False) -> FastAPI:
    """The service on `engine`. Curve answers suppress buckets with fewer than `min_audience` faces;
    `limits`: body caps, live streams per key, who may read /metrics and the docs (service.guard);
    `public`: it listens on a non-loopback address, where it never answers as an open service."""
    if min_audience < 1:
        raise ValueError("min_audience must be >= 1")
    migrate(engine)
    # the API docs' scripts and styles are served by the service itself: the page works offline
    app = FastAPIOffline(title="audience-reactions", version="0.1.0",
                  description="Reaction curves of whole audiences: contents, screenings, per-second statistics.")
    app.state.engine = engine
    app.state.answers = AnswerCache()
    app.state.min_audience = min_audience
    app.state.keys = Keys(engine, public=public)
    app.state.limits = limits
    app.state.live_streams = LiveStreams(limits.live_streams_per_key)
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])
    for module in (contents, screenings, curves, live, model):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(dashboard.router)
    # the guard sits inside the metrics middleware (which counts its refusals too): a receive wrapped by
    # that BaseHTTPMiddleware would turn the guard's 413/408 into exception groups
    app.add_middleware(Guard, keys=app.state.keys, limits=limits)
    app.state.metrics = ServiceMetrics(app)
    app.state.metrics.install(app)

    async def database_unavailable(request, exc):
        # the database is locked past its timeout, restarting or unreachable: nothing was written (the
        # transaction rolled back), and the client may simply try again. The driver's own error arrives
        # unwrapped from the routes that use its cursor directly (bulk insert, curve sums).
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
        return JSONResponse(status_code=503, headers={"Retry-After": "1"},
                            content={"detail": f"database unavailable, retry: {reason}"})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc):
        # where and why only: the input itself may be a NaN (not JSON) or a megabyte, neither fit to echo
        errors = [{"type": e.get("type"), "loc": [str(p)[:100] for p in e.get("loc", ())],
                   "msg": str(e.get("msg"))[:300]} for e in exc.errors()[:20]]
        return JSONResponse(status_code=422, content={"detail": errors})

    for error in _unavailable_errors():
        app.add_exception_handler(error, database_unavailable)

    @app.get("/healthz", tags=["operations"])
    def healthz():
        return {"status": "ok"}

    return app


def _unavailable_errors() -> list[type]:
    """SQLAlchemy's OperationalError and the drivers' own (sqlite3, psycopg when installed)."""
    import sqlite3

    errors = [OperationalError, sqlite3.OperationalError]
    try:
        import psycopg

        errors.append(psycopg.OperationalError)
    except ImportError:
        pass
    return errors
