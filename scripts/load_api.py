"""Load harness: concurrent ingest clients and curve readers against a running service, for a bounded
time on loopback; then a check that every acknowledged sample is stored exactly once.

    python scripts/load_api.py [--db sqlite:///tmp/load.db | --db postgresql+psycopg://...]
                               [--clients 20] [--readers 4] [--seconds 20]

Starts `audience serve` on the database. Each ingest client is a camera of its own (a camera's second is
written once, whole: two writers of one camera-second are refused) with 10 track ids, and posts batches
of 10 tracks x 5 seconds (50 rows), moving on through the content (five cameras per screening); one
batch in five is sent twice (a replay, which must be answered "unchanged"). A batch counts as acknowledged
only on 200; anything else (503 when the database is busy, a dropped connection) is retried until it is.
Readers query the whole content's curve in a loop. Afterwards the database is read directly: the stored
per-track rows must be exactly the acknowledged ones, and the per-second aggregates must count each of
them once.
"""
from __future__ import annotations

import json
import random
import tempfile
import threading
import time

import numpy as np

from _bench import parser, serving  # first: the project on the import path
from service.uplink.client import ApiClient
from vision.errors import PublishError
from vision.stats import VALUES

TRACKS, SECONDS_PER_BATCH = 10, 5


def batch(client: int, step: int) -> dict:
    rng = np.random.default_rng(client * 100_003 + step)
    tracks = np.arange(client * 1000 + 1, client * 1000 + 1 + TRACKS)
    seconds = np.arange(step * SECONDS_PER_BATCH, (step + 1) * SECONDS_PER_BATCH)
    n = len(tracks) * len(seconds)
    cols = {"track_id": np.tile(tracks, len(seconds)).tolist(), "second": np.repeat(seconds, len(tracks)).tolist(),
            "n": [2] * n}
    values = rng.uniform(0, 1, (n, len(VALUES)))
    for j, v in enumerate(VALUES):
        cols[f"s_{v}"] = (values[:, j] * 2).tolist()
        cols[f"q_{v}"] = (values[:, j] ** 2 * 2).tolist()
    return cols


def run_load(base: str, seconds: float, clients: int = 20, readers: int = 4, screenings: int = 4) -> dict:
    api = ApiClient(base)
    _, content = api.request("POST", "/api/v1/contents", {"title": "load", "duration_s": 36000})
    ids = [api.request("POST", "/api/v1/screenings", {"content_id": content["id"]})[1]["id"]
           for _ in range(screenings)]
    acknowledged: set[tuple[int, int, int]] = set()
    lock = threading.Lock()
    ingest_ms, query_ms, statuses, server_errors = [], [], {}, []
    deadline = time.monotonic() + seconds

    def post(sid: int, cols: dict, camera: str) -> tuple[int, dict]:
        t0 = time.perf_counter()
        try:
            status, payload = api.request("POST", f"/api/v1/screenings/{sid}/stats",
                                       {"camera": camera, "columns": cols})
        except PublishError:
            status, payload = 0, {}
        with lock:
            ingest_ms.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 500 and len(server_errors) < 5:
                server_errors.append(f"{status}: {str(payload.get('detail', ''))[:200]}")
        return status, payload

    def ingest(client: int) -> None:
        sid, step, rng = ids[client % len(ids)], 0, random.Random(client)
        while time.monotonic() < deadline:
            cols = batch(client, step)
            while True:  # until acknowledged: a 503 or a dropped connection is retried
                status, payload = post(sid, cols, f"cam{client}")
                if status == 200:
                    break
                if 400 <= status < 500:
                    raise AssertionError(f"client {client} step {step}: {status} {payload}")
                time.sleep(0.05)
            with lock:
                acknowledged.update((sid, t, s) for t, s in zip(cols["track_id"], cols["second"]))
            if rng.random() < 0.2:  # a replay must change nothing
                status, payload = post(sid, cols, f"cam{client}")
                if status == 200 and payload["inserted"]:
                    raise AssertionError(f"a replayed batch inserted {payload['inserted']} rows")
            step += 1

    def read() -> None:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            status, _ = api.request("GET", f"/api/v1/contents/{content['id']}/curves?metrics=p_happiness,valence")
            with lock:
                query_ms.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=ingest, args=(c,)) for c in range(clients)]
    threads += [threading.Thread(target=read) for _ in range(readers)]
    errors = []
    for t in threads:
        t.run = _catching(t.run, errors)
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"content_id": content["id"], "screenings": ids, "acknowledged": acknowledged, "elapsed_s": elapsed,
            "rows_per_s": len(acknowledged) / elapsed, "statuses": statuses, "errors": errors,
            "ingest_p50_ms": float(np.percentile(ingest_ms, 50)), "ingest_p95_ms": float(np.percentile(ingest_ms, 95)),
            "query_p50_ms": float(np.percentile(query_ms, 50)) if query_ms else None,
            "query_p95_ms": float(np.percentile(query_ms, 95)) if query_ms else None,
            "requests": len(ingest_ms) + len(query_ms), "server_errors": server_errors}


def _catching(run, errors):
    def wrapped():
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(repr(exc))
    return wrapped


def verify(db: str, result: dict) -> dict:
    """Stored rows == acknowledged rows, and every aggregate counts each row once."""
    from sqlalchemy import func, select

    from service.db import make_engine
    from service.models import camera_second, content_second, track_second

    engine = make_engine(db)
    ts, cs = track_second.c, camera_second.c
    with engine.connect() as conn:
        stored = conn.execute(select(ts.screening_id, ts.track_id, ts.second)
                              .where(ts.screening_id.in_(result["screenings"]))).all()
        per_second: dict[tuple[int, int], int] = {}
        for s, sec, k in conn.execute(select(cs.screening_id, cs.second, cs.k)
                                      .where(cs.screening_id.in_(result["screenings"]))):
            per_second[(s, sec)] = per_second.get((s, sec), 0) + k  # the cameras of a screening together
        content_k = conn.execute(select(func.sum(content_second.c.k))
                                 .where(content_second.c.content_id == result["content_id"])).scalar() or 0
    engine.dispose()
    keys = [tuple(r) for r in stored]
    expected: dict[tuple[int, int], int] = {}
    for sid, _, sec in result["acknowledged"]:
        expected[(sid, sec)] = expected.get((sid, sec), 0) + 1
    return {"stored": len(keys), "acknowledged": len(result["acknowledged"]), "duplicates": len(keys) - len(set(keys)),
            "missing": len(result["acknowledged"] - set(keys)), "unacknowledged": len(set(keys) - result["acknowledged"]),
            "aggregates_match": per_second == expected, "content_k": int(content_k)}


def main(argv=None) -> int:
    args = parser(__doc__, db=None, clients=20, readers=4, seconds=20.0).parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/load.db"
        with serving(db) as server:
            result = run_load(server.url, args.seconds, args.clients, args.readers)
        check = verify(db, result)
    print(f"database: {db.split('@')[-1]}; {args.clients} ingest clients + {args.readers} curve readers, "
          f"{result['elapsed_s']:.1f} s, {result['requests']} requests, statuses {result['statuses']}"
          f"{'; first 5xx: ' + ' | '.join(result['server_errors']) if result['server_errors'] else ''}")
    print(f"ingest: {result['rows_per_s']:,.0f} acknowledged rows/s; latency p50 {result['ingest_p50_ms']:.0f} ms, "
          f"p95 {result['ingest_p95_ms']:.0f} ms")
    print(f"curve queries: p50 {result['query_p50_ms']:.0f} ms, p95 {result['query_p95_ms']:.0f} ms")
    print(f"check: {check['acknowledged']} acknowledged, {check['stored']} stored, {check['missing']} missing, "
          f"{check['duplicates']} duplicates, {check['unacknowledged']} stored unacknowledged, aggregates "
          f"{'match' if check['aggregates_match'] else 'DO NOT match'}; client errors {result['errors'] or 'none'}")
    print(json.dumps({k: v for k, v in {**result, **check}.items() if k not in ("acknowledged", "screenings")}))
    ok = not (check["missing"] or check["duplicates"] or check["unacknowledged"] or result["errors"]) \
        and check["aggregates_match"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
