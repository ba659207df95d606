"""Operations endpoints of `audience live`: /metrics (Prometheus text format) and /healthz, served from a
small thread on loopback; and the figures behind them."""
from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _Total:
    """A counter set from a running total kept elsewhere (the reader thread's counts)."""

    def __init__(self, counter: Counter):
        self.counter, self.value = counter, 0

    def set_total(self, total: int) -> None:
        if total > self.value:
            self.counter.inc(total - self.value)
            self.value = total


class LiveMetrics:
    def __init__(self, spool):
        r = self.registry = CollectorRegistry()
        self.spool = spool
        self.read = _Total(Counter("audience_live_frames_read", "frames taken from the source at the analysis rate",
                                   registry=r))
        self.dropped = _Total(Counter("audience_live_frames_dropped", "frames replaced by a newer one before "
                                      "analysis could take them (analysis slower than the stream)", registry=r))
        self.reconnects = _Total(Counter("audience_live_reconnects", "times the source was reopened", registry=r))
        self.analysed = Counter("audience_live_frames_analysed", "frames analysed", registry=r)
        self.faces = Counter("audience_live_faces", "face observations", registry=r)
        self.sent = Counter("audience_live_items_sent", "spooled items the service acknowledged", registry=r)
        self.send_errors = Counter("audience_live_send_errors", "failed attempts to send a spooled item", registry=r)
        self.gap_seconds = Counter("audience_live_gap_seconds", "seconds the source delivered nothing", registry=r)
        Gauge("audience_live_spool_depth", "items waiting in the spool", registry=r).set_function(spool.depth)
        self.analysed_latency = Histogram("audience_live_analysis_latency_seconds", "frame read -> analysed",
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.stored_latency = Histogram("audience_live_stored_latency_seconds",
                                        "last frame of a second read -> the second acknowledged by the service",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self._analysed_samples: list[float] = []
        self._stored_samples: list[float] = []
        self._wrap(self.analysed_latency, self._analysed_samples)
        self._wrap(self.stored_latency, self._stored_samples)
        self.started = time.monotonic()

    @staticmethod
    def _wrap(histogram: Histogram, samples: list) -> None:
        observe = histogram.observe

        def both(value: float) -> None:
            samples.append(value)
            observe(value)

        histogram.observe = both

    def count(self, reader) -> None:
        """Take the reader thread's running totals."""
        self.read.set_total(reader.frames_read)
        self.dropped.set_total(reader.frames_dropped)
        self.reconnects.set_total(reader.reconnects)

    def on_sent(self, kind: str, body: dict, created: float) -> None:
        """The sender's callback: an item the service acknowledged."""
        self.sent.inc()
        if kind == "stats":
            self.stored_latency.observe(max(time.time() - body.get("captured", created), 0.0))

    def on_error(self, message: str) -> None:
        self.send_errors.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def detail(self, reader) -> dict:
        """The figures reported to the service with each heartbeat."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {"frames_analysed": int(self.analysed._value.get()), "frames_dropped": reader.frames_dropped,
                "analysis_fps": round(self.analysed._value.get() / elapsed, 3), "reconnects": reader.reconnects,
                "spool_depth": self.spool.depth(), "latency_p95_s": _p(self._analysed_samples[-200:], 95)}

    def summary(self, reader, elapsed: float) -> dict:
        analysed = int(self.analysed._value.get())
        read = reader.frames_read
        return {"frames_read": read, "frames_analysed": analysed, "frames_dropped": reader.frames_dropped,
                "drop_rate": reader.frames_dropped / read if read else 0.0,
                "analysis_fps": analysed / elapsed if elapsed > 0 else 0.0, "elapsed_s": elapsed,
                "faces": int(self.faces._value.get()), "reconnects": reader.reconnects,
                "gap_seconds": self.gap_seconds._value.get(), "send_errors": int(self.send_errors._value.get()),
                "latency_analysed_p50_s": _p(self._analysed_samples, 50),
                "latency_analysed_p95_s": _p(self._analysed_samples, 95),
                "latency_stored_p50_s": _p(self._stored_samples, 50),
                "latency_stored_p95_s": _p(self._stored_samples, 95)}


def _p(values: list, q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class OpsServer:
    def __init__(self, metrics: LiveMetrics, reader, host: str, port: int, stderr=None):
        self.url = None
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.split("?")[0] == "/metrics":
                    body, kind, status = metrics.exposition(), CONTENT_TYPE_LATEST, 200
                elif self.path.split("?")[0] == "/healthz":
                    state = reader.state
                    body = json.dumps({"status": "ok" if state == "running" else "degraded", "source": state,
                                       "spool_depth": metrics.spool.depth()}).encode()
                    kind, status = "application/json", 200
                else:
                    body, kind, status = b"not found (try /metrics or /healthz)\n", "text/plain", 404
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            print(f"audience live: no /metrics server on {host}:{port} ({exc.strerror}); analysis goes on",
                  file=stderr or sys.stderr)
            self.httpd = None
            return
        ops.url = f"http://{host}:{self.httpd.server_address[1]}/metrics"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="live-ops", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
