"""A durable local queue (one SQLite file) between live analysis and the service.

Every per-second batch and every gap is written here first, committed to disk (synchronous=FULL), and
only removed once the service (or database) has acknowledged it. The API being down makes the queue
grow; a restart finds what was not sent and sends it. Ingest is idempotent, so an item sent twice (a
crash between the service's acknowledgement and the removal here) is stored once.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path


class Spool:
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
                         "body TEXT NOT NULL, created REAL NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
                         "body TEXT NOT NULL, created REAL NOT NULL, error TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def put(self, kind: str, body: dict) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO item (kind, body, created) VALUES (?, ?, ?)",
                                   (kind, json.dumps(body), time.time()))
            return int(cur.lastrowid)

    def peek(self, limit: int = 1) -> list[tuple[int, str, dict, float]]:
        """The oldest items, not removed: (id, kind, body, created)."""
        with self._lock:
            rows = self._db.execute("SELECT id, kind, body, created FROM item ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(i, k, json.loads(b), c) for i, k, b, c in rows]

    def ack(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM item WHERE id = ?", (item_id,))

    def bury(self, item_id: int, error: str) -> None:
        """Move an item the service refused for good (409, 422, 404) aside, with the reason: kept for a
        person to look at, never retried, never blocking what comes after it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO dead SELECT id, kind, body, created, ? FROM item WHERE id = ?", (error, item_id))
            self._db.execute("DELETE FROM item WHERE id = ?", (item_id,))
            self._db.execute("COMMIT")

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM item").fetchone()[0])

    def dead(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM dead").fetchone()[0])

    def meta(self, key: str, default=None):
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                             "excluded.value", (key, json.dumps(value)))

    def close(self) -> None:
        with self._lock:
            self._db.close()
