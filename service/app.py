"""The FastAPI application: `create_app(engine)`; routes under /api/v1, documented in OpenAPI."""
from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine

from .auth import Keys, authorize
from .cache import AnswerCache
from .db import migrate
from .metrics import ServiceMetrics
from .routes import contents, curves, dashboard, live, model, screenings


DEFAULT_MIN_AUDIENCE = 5


def create_app(engine: Engine, min_audience: int = DEFAULT_MIN_AUDIENCE, public: bool = False) -> FastAPI:
    """The service on `engine`. Curve answers suppress buckets with fewer than `min_audience` faces.
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
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])
    for module in (contents, screenings, curves, live, model):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(dashboard.router)
    app.state.metrics = ServiceMetrics(app)
    app.state.metrics.install(app)

    @app.exception_handler(OperationalError)
    async def database_unavailable(request, exc):
        # the database is locked past its timeout, restarting or unreachable: nothing was written (the
        # transaction rolled back), and the client may simply try again
        return JSONResponse(status_code=503, headers={"Retry-After": "1"},
                            content={"detail": f"database unavailable, retry: {str(exc.orig).splitlines()[0][:200]}"})

    @app.get("/healthz", tags=["operations"])
    def healthz():
        return {"status": "ok"}

    return app
