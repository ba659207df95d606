"""The FastAPI application: `create_app(engine)`; routes under /api/v1, documented in OpenAPI."""
from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine

from .cache import AnswerCache
from .db import migrate
from .metrics import ServiceMetrics
from .routes import contents, curves, dashboard, live, screenings


def create_app(engine: Engine) -> FastAPI:
    migrate(engine)
    # the API docs' scripts and styles are served by the service itself: the page works offline
    app = FastAPIOffline(title="audience-reactions", version="0.1.0",
                  description="Reaction curves of whole audiences: contents, screenings, per-second statistics.")
    app.state.engine = engine
    app.state.answers = AnswerCache()
    api = APIRouter(prefix="/api/v1")
    for module in (contents, screenings, curves, live):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(dashboard.router)
    app.state.metrics = ServiceMetrics(app)
    app.state.metrics.install(app)

    @app.get("/healthz", tags=["operations"])
    def healthz():
        return {"status": "ok"}

    return app
