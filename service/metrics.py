"""Prometheus metrics of the service (text format at /metrics): requests and their latency per route,
ingested rows, and the live sources' states. One registry per app, so apps in one process (tests) don't mix."""
from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

API_PREFIX = "/api/v1"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self, app: FastAPI):
        self.registry = CollectorRegistry()
        self.requests = Counter("audience_http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("audience_http_request_seconds", "time to answer a request",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ingested = Counter("audience_ingest_rows_total", "per-track-second rows received",
                                ["result"], registry=self.registry)
        self.registry.register(_SourcesCollector(app))

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def measure(request: Request, call_next):
            started = time.perf_counter()
            response = await call_next(request)
            route = request.scope.get("route")
            path = getattr(route, "path", None)
            if path is None:
                path = "unmatched"
            elif request.url.path.startswith(API_PREFIX) and not path.startswith(API_PREFIX):
                path = API_PREFIX + path  # routes of the included API router carry their own path only
            if not path.endswith("/live"):  # a stream's duration is not a latency
                self.latency.labels(request.method, path).observe(time.perf_counter() - started)
            self.requests.labels(request.method, path, str(response.status_code)).inc()
            return response

        @app.get("/metrics", tags=["operations"], response_class=Response)
        def metrics():
            """Prometheus text format."""
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _SourcesCollector:
    """Live sources by reported state, read from the database at each scrape."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self):
        from sqlalchemy import func, select
        from sqlmodel import Session

        from .models import live_source

        family = GaugeMetricFamily("audience_live_sources", "live sources by last reported state", labels=["state"])
        try:
            with Session(self.app.state.engine) as session:
                rows = session.execute(select(live_source.c.state, func.count()).group_by(live_source.c.state)).all()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is busy
            rows = []
        for state, count in rows:
            family.add_metric([state], count)
        yield family
