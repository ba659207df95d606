"""Sends the spool's items to the service (HTTP) or straight to a database, oldest first, in a thread.

Unreachable (connection refused, timeout, 5xx, database down): keep the item, wait with backoff, retry.
Refused for good (404, 409, 422; Conflict/Invalid from the store): the item is buried in the spool's
`dead` table with the reason and counted, and sending goes on.
"""
from __future__ import annotations

import sys
import threading
import time

from vision.errors import Conflict, Invalid, Refused, Unreachable

from .client import ApiClient, DbClient, arrow_batch
from .spool import Spool


class ApiTarget:
    def __init__(self, client: ApiClient):
        self.client = client

    def _call(self, method: str, path: str, body: dict | bytes) -> dict:
        status, payload = self.client.request(method, path, body)  # Unreachable: retried
        if status >= 500 or status in (408, 429):
            raise Unreachable(f"{self.client.base.rstrip('/')} answered {status}")
        if status >= 400:
            raise Refused(f"{status}: {payload.get('detail', '')}")
        return payload

    def send(self, kind: str, body: dict) -> None:
        sid = body["screening"]
        if kind == "stats":
            self._call("POST", f"/api/v1/screenings/{sid}/stats",
                       arrow_batch(body["camera"], body["columns"], body["covered"]))
        elif kind == "gap":
            self._call("POST", f"/api/v1/screenings/{sid}/gaps",
                       {k: body[k] for k in ("camera", "start_s", "end_s", "reason")})
        else:
            raise Refused(f"unknown item kind {kind!r}")

    def report(self, screening: int, camera: str, state: str, detail: dict) -> None:
        from urllib.parse import quote

        self._call("PUT", f"/api/v1/screenings/{screening}/sources/{quote(camera, safe='')}",
                   {"state": state, "detail": detail})


class DbTarget:
    def __init__(self, url: str):
        from ..db import make_engine

        self.url = url
        self.engine = make_engine(url)
        self._migrated = False  # on first use: the database may be down when the live process starts

    def _session(self):
        from sqlmodel import Session

        from ..db import migrate

        if not self._migrated:
            migrate(self.engine)
            self._migrated = True
        return Session(self.engine)

    def _write(self, action) -> None:
        from sqlalchemy.exc import OperationalError

        from .. import store

        try:
            with self._session() as session:
                store.retrying(session, lambda: action(session))
        except (Conflict, Invalid) as exc:
            raise Refused(str(exc)) from None
        except OperationalError as exc:
            raise Unreachable(str(exc).splitlines()[0]) from None

    def send(self, kind: str, body: dict) -> None:
        from .. import store

        sid = body["screening"]
        if kind == "stats":
            self._write(lambda s: store.ingest(s, sid, body["camera"], body["columns"], body["covered"]))
        elif kind == "gap":
            self._write(lambda s: store.add_gap(s, sid, body["camera"], body["start_s"], body["end_s"], body["reason"]))
        else:
            raise Refused(f"unknown item kind {kind!r}")

    def report(self, screening: int, camera: str, state: str, detail: dict) -> None:
        from .. import store

        self._write(lambda s: store.set_source_state(s, screening, camera, state, detail))


def target_for(client: ApiClient | DbClient) -> ApiTarget | DbTarget:
    """Where the sender delivers: the client's service, or its database written directly."""
    return ApiTarget(client) if isinstance(client, ApiClient) else DbTarget(client.url)


class Sender(threading.Thread):
    """Drains the spool into `target`; `heartbeat()` -> (screening, camera, state, detail) is reported every
    `heartbeat_s`. Callbacks: on_sent(kind, body, created), on_error(message)."""

    def __init__(self, spool: Spool, target, heartbeat=None, heartbeat_s: float = 5.0,
                 on_sent=None, on_error=None, max_backoff_s: float = 5.0):
        super().__init__(name="spool-sender", daemon=True)
        self.spool, self.target, self.heartbeat, self.heartbeat_s = spool, target, heartbeat, heartbeat_s
        self.on_sent, self.on_error = on_sent or (lambda *a: None), on_error or (lambda *a: None)
        self.max_backoff_s = max_backoff_s
        self._halt = threading.Event()
        self._wake = threading.Event()
        self.sent = self.errors = self.refused = 0
        self.reachable = True

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()

    def drain(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout_s
        while self.spool.depth() and time.monotonic() < deadline and self.is_alive():
            self._wake.set()
            time.sleep(0.05)
        return self.spool.depth() == 0

    def run(self) -> None:
        backoff, next_beat = 0.25, 0.0
        while not self._halt.is_set():
            if self.heartbeat is not None and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.heartbeat_s
                self._beat()
            items = self.spool.peek(1)
            if not items:
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            item_id, kind, body, created = items[0]
            try:
                self.target.send(kind, body)
            except Unreachable as exc:
                self.errors += 1
                if self.reachable:
                    print(f"audience live: cannot send ({exc}); keeping results in the spool and retrying",
                          file=sys.stderr)
                self.reachable = False
                self.on_error(str(exc))
                self._halt.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            except Refused as exc:
                self.refused += 1
                self.spool.bury(item_id, str(exc))
                print(f"audience live: the service refused a {kind} item ({exc}); kept aside in {self.spool.path}",
                      file=sys.stderr)
                self.on_error(str(exc))
                continue
            if not self.reachable:
                print("audience live: sending again", file=sys.stderr)
            self.reachable, backoff = True, 0.25
            self.spool.ack(item_id)
            self.sent += 1
            self.on_sent(kind, body, created)

    def _beat(self) -> None:
        try:
            self.target.report(*self.heartbeat())
        except (Unreachable, Refused):
            pass

    def final_beat(self) -> None:
        if self.heartbeat is not None:
            self._beat()

    def finish(self, timeout_s: float) -> bool:
        """At the end: send what is spooled for up to `timeout_s` (True: everything went), report a last
        heartbeat, stop the thread."""
        drained = self.drain(timeout_s)
        self.final_beat()
        self.stop()
        self.join(timeout=10)
        return drained
