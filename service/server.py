"""Running the service under uvicorn with timeouts a slow client cannot outwait.

uvicorn times out idle keep-alive connections but not a request whose headers trickle in (slowloris);
`TimedH11Protocol` closes a connection whose request headers are not complete `header_timeout_s` after it
opened or after its previous response. Slow bodies are answered 408 by `service.guard.Guard`.
"""
from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
MAX_HEADER_BYTES = 64 * 1024
MAX_CONNECTIONS = 200  # beyond this uvicorn answers 503 instead of queueing


class TimedH11Protocol(H11Protocol):
    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        waiting_since = self.scope  # a new request replaces self.scope once its headers are parsed
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow, waiting_since)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self, waiting_since) -> None:
        if self.scope is waiting_since and not self.transport.is_closing():
            self.transport.close()


def config(app, host: str, port: int, header_timeout_s: float = HEADER_TIMEOUT_S, **kwargs):
    """uvicorn's Config for the service: h11 with the header timeout, bounded header size, keep-alive and
    connection count."""
    import uvicorn

    protocol = type("Protocol", (TimedH11Protocol,), {"header_timeout_s": header_timeout_s})
    return uvicorn.Config(app, host=host, port=port, http=protocol, timeout_keep_alive=KEEP_ALIVE_S,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, limit_concurrency=MAX_CONNECTIONS,
                          **kwargs)
