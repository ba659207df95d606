"""Issue 16 items 3, 4, 7 and 8 replayed: stored XSS and the Content-Security-Policy, resource limits
applied before any work, errors a client can act on, and what the anonymous may read. Each test sends the
request that broke main (on SQLite, and on PostgreSQL where AUDIENCE_TEST_PG names one)."""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from builders import ROOT, fake_observations, pg_engine, run_cli, stat_rows
from service import auth, store
from service.app import create_app
from service.db import make_engine
from service.guard import Limits
from service.models import Content, Screening, camera_gap, live_source, track_second
from _bench import free_port
from vision.stats import as_lists, track_seconds

XSS = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def _keys(engine, app, contents):
    with Session(engine) as s:
        keys = {name: auth.create_key(s, name, scopes, limit)[1] for name, scopes, limit in (
            ("admin", ["admin"], None), ("reader", ["read"], None), ("ingester", ["ingest"], None),
            ("limited", ["read"], contents))}
    return keys


@pytest.fixture(params=["sqlite", "postgresql"])
def keyed(request):
    """A service with keys on: content A (screening with data) and content B; keys of each kind, one of
    them limited to content B."""
    if request.param == "sqlite":
        engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
        cleanup = None
    else:
        engine, cleanup = pg_engine()
    app = create_app(engine, min_audience=1)
    with TestClient(app) as c:
        a = c.post("/api/v1/contents", json={"title": "A", "duration_s": 30}).json()["id"]
        b = c.post("/api/v1/contents", json={"title": "B", "duration_s": 30}).json()["id"]
        sid = c.post("/api/v1/screenings", json={"content_id": a}).json()["id"]
        assert c.post(f"/api/v1/screenings/{sid}/stats",
                      json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))}).status_code == 200
        keys = _keys(engine, app, [b])
        yield c, (a, b, sid), keys, engine
    engine.dispose()
    if cleanup:
        cleanup()


def _counts(engine):
    with Session(engine) as s:
        return (len(s.exec(select(Content)).all()), len(s.exec(select(Screening)).all()),
                *(s.execute(select(func.count()).select_from(t)).scalar() for t in (track_second, camera_gap,
                                                                                     live_source)))


# ---- item 7: errors a client can act on, nothing stored ---------------------------------------------------

def test_malformed_requests_answer_4xx_with_a_reason_and_store_nothing(keyed):
    c, (a, b, sid), keys, engine = keyed
    admin, ingest = bearer(keys["admin"]), bearer(keys["ingester"])
    before = _counts(engine)
    curve = f"/api/v1/contents/{a}/curves"

    def refused(response, text=""):
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
        assert text in json.dumps(response.json()), response.text[:300]

    refused(c.get(curve, params={"metrics": "p_happiness,p_happiness", "bucket": 2}, headers=admin), "at most once")
    refused(c.get(curve, params={"metrics": ",".join(["p_happiness"] * 1200)}, headers=admin), "at most once")
    refused(c.get(curve, params={"metrics": ",".join(f"m{i}" for i in range(1200))}, headers=admin), "unknown")
    assert len(c.get(curve, params={"metrics": ",".join(f"m{i}" for i in range(1200))},
                     headers=admin).text) < 1000  # the reason, not an echo of the input
    for bucket in ("1e-20", "0.5", "2.5", "-1", "nan", "inf", "1e300"):
        refused(c.get(curve, params={"bucket": bucket}, headers=admin))
    refused(c.get(f"/api/v1/contents/{a}/compare", params={"bucket": "1e-20"}, headers=admin))
    refused(c.get(f"/api/v1/contents/{a}/moments", params={"bucket": "1e-20"}, headers=admin))

    def post_raw(path, text, headers=admin):
        return c.post(path, content=text, headers={**headers, "Content-Type": "application/json"})

    for offset in ("NaN", "Infinity", "-Infinity", str(2 ** 31), str(-2 ** 31), "1e308"):
        refused(post_raw("/api/v1/screenings", f'{{"content_id": {a}, "content_offset_s": {offset}}}'))
    for duration in ("NaN", "Infinity", "1e308"):
        refused(post_raw("/api/v1/contents", f'{{"title": "t", "duration_s": {duration}}}'))
    refused(c.patch(f"/api/v1/contents/{a}", content='{"duration_s": Infinity}',
                    headers={**admin, "Content-Type": "application/json"}))
    r = c.post("/api/v1/screenings", json={"content_id": a, "labels": {"cut": "x" * 2 ** 20}}, headers=admin)
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    refused(c.post("/api/v1/screenings", json={"content_id": a, "labels": {"cut": "x" * 200_000}}, headers=admin))
    refused(c.post("/api/v1/screenings", json={"content_id": a, "labels": {f"k{i}": "v" for i in range(33)}},
                   headers=admin))
    refused(c.patch(f"/api/v1/screenings/{sid}", json={"labels": {"x" * 65: "v"}}, headers=admin))
    refused(c.post("/api/v1/screenings", json={"content_id": a, "venue": "v" * 301}, headers=admin))
    for start in (str(2 ** 31), "NaN", "Infinity", str(-2 ** 31)):
        refused(post_raw(f"/api/v1/screenings/{sid}/gaps", f'{{"camera": "c", "start_s": {start}, "end_s": 5}}',
                         ingest))
    rows = stat_rows(track_seconds(fake_observations(seed=3)))
    for second in (2 ** 31, -2 ** 31, 2 ** 31 - 1):
        refused(c.post(f"/api/v1/screenings/{sid}/stats",
                       json={"camera": "c2", "rows": [{**rows[0], "second": second}]}, headers=ingest), "second")
    refused(c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c2", "rows": [], "covered": [2 ** 31]},
                   headers=ingest))
    refused(c.put(f"/api/v1/screenings/{sid}/sources/{'c' * 301}", json={"state": "running"}, headers=ingest))
    # a content-limited key and an id FastAPI cannot read as an integer: a 4xx, never a 500
    limited = bearer(keys["limited"])
    for raw in ("%C2%B2", "%EF%BC%91", "1e3"):
        r = c.get(f"/api/v1/screenings/{raw}/gaps", headers=limited)
        assert r.status_code in (404, 422), (raw, r.status_code, r.text[:200])
    assert _counts(engine) == before


def test_source_detail_is_typed_and_bounded_and_old_rows_are_shown_clean(keyed):
    c, (a, b, sid), keys, engine = keyed
    ingest = bearer(keys["ingester"])
    url = f"/api/v1/screenings/{sid}/sources/cam1"
    for detail in ({"analysis_fps": XSS}, {"analysis_fps": {"nested": 1}}, {f"k{i}": 1 for i in range(33)},
                   {"Bad-Name": 1}, {"x" * 41: 1}, {"note": "text"}):
        r = c.put(url, json={"state": "running", "detail": detail}, headers=ingest)
        assert r.status_code == 422, (detail, r.status_code)
    r = c.put(url, content='{"state": "running", "detail": {"analysis_fps": NaN}}',
              headers={**ingest, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert _counts(engine)[-1] == 0
    figures = {"frames_analysed": 10, "frames_dropped": 0, "analysis_fps": 4.5, "reconnects": 0, "spool_depth": 3,
               "latency_p95_s": None}
    r = c.put(url, json={"state": "running", "detail": figures}, headers=ingest)
    assert r.status_code == 200 and r.json()["detail"] == figures
    # a row stored before detail was validated (main let anything in) is shown with its numbers only
    with Session(engine) as s:
        store.set_source_state(s, sid, "old", "running", {"analysis_fps": XSS, "spool_depth": 2, "x": [1] * 5})
    shown = {row["camera"]: row for row in c.get(f"/api/v1/screenings/{sid}/sources",
                                                          headers=bearer(keys["admin"])).json()}
    assert shown["old"]["detail"] == {"spool_depth": 2}


# ---- item 3: the Content-Security-Policy -------------------------------------------------------------------

def _script_src(response):
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    return directives["script-src"], directives


def test_every_response_carries_a_policy_forbidding_inline_script(keyed):
    c, (a, b, sid), keys, engine = keyed
    for path, headers in (("/", {}), ("/assets/app.js", {}), ("/healthz", {}), ("/api/v1/contents", {}),
                          ("/api/v1/contents", bearer(keys["reader"])), ("/nowhere", {}), ("/redoc", {}),
                          ("/openapi.json", {}), (f"/api/v1/contents/{a}/curves?format=csv", bearer(keys["reader"]))):
        r = c.get(path, headers=headers)
        scripts, directives = _script_src(r)
        assert scripts == "'self'", (path, scripts)
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    r = c.post("/api/v1/contents", json={"title": "t", "duration_s": 1})  # refused by the guard itself
    assert r.status_code == 401 and _script_src(r)[0] == "'self'"
    # Swagger UI's page has one inline script (FastAPI's): its hash, not 'unsafe-inline', lets it run
    for path in ("/docs", "/docs/oauth2-redirect"):
        scripts, _ = _script_src(c.get(path))
        assert "'unsafe-inline'" not in scripts and scripts.count("'sha256-") == 1, scripts


# ---- item 8: /metrics and the docs once keys exist ---------------------------------------------------------

def test_metrics_need_an_admin_key_and_docs_are_a_setting(keyed):
    c, (a, b, sid), keys, engine = keyed
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers=bearer(keys["reader"])).status_code == 403
    r = c.get("/metrics", headers=bearer(keys["admin"]))
    assert r.status_code == 200 and "audience_http_requests_total" in r.text
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert c.get(path).status_code == 200  # default: docs need no key
    app = create_app(engine, min_audience=1, limits=Limits(metrics="open", docs="key"))
    with TestClient(app) as other:
        assert other.get("/metrics").status_code == 200
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert other.get(path).status_code == 401
            assert other.get(path, headers=bearer(keys["reader"])).status_code == 200
        assert other.get("/openapi.json", headers=bearer("aud_nonsense")).status_code == 401


def test_an_open_service_still_shows_metrics_and_docs():
    engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    with TestClient(create_app(engine)) as c:
        assert c.get("/metrics").status_code == 200 and c.get("/openapi.json").status_code == 200


# ---- item 4: limits before work ----------------------------------------------------------------------------

def test_bodies_are_capped_on_every_route(keyed):
    c, (a, b, sid), keys, engine = keyed
    admin = bearer(keys["admin"])
    before = _counts(engine)
    big = json.dumps({"title": "t" * (2 * 2 ** 20), "duration_s": 1})
    r = c.post("/api/v1/contents", content=big, headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 413
    chunks = (b'{"title": "' + b"t" * 2 ** 16 for _ in range(40))  # no Content-Length: counted as it arrives
    r = c.post("/api/v1/contents", content=chunks, headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 413
    r = c.put(f"/api/v1/screenings/{sid}/sources/cam", content=big,
              headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert _counts(engine) == before
    # an ingest batch has its own, larger cap
    rows = stat_rows(track_seconds(fake_observations(n_tracks=40, seconds=60, per_second=1, seed=4)))
    body = json.dumps({"camera": "big", "rows": rows})
    assert len(body) > 2 ** 20
    assert c.post(f"/api/v1/screenings/{sid}/stats", content=body,
                  headers={**bearer(keys["ingester"]), "Content-Type": "application/json"}).status_code == 200


def _arrow_stream(columns: dict, compression=None, camera="c") -> bytes:
    import pyarrow as pa

    table = pa.table(columns).replace_schema_metadata({"camera": camera, "covered": "null"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_arrow_bombs_are_refused_before_decompression(keyed):
    from service.uplink.client import ARROW
    from service.store import ROW_KEYS

    c, (a, b, sid), keys, engine = keyed
    url, headers = f"/api/v1/screenings/{sid}/stats", {**bearer(keys["ingester"]), "Content-Type": ARROW}
    before = _counts(engine)
    rows = 2_000_000  # zeros: 50 KB of zstd that decompress to 1.1 GB
    bomb = _arrow_stream({k: np.zeros(rows, np.int64 if k in ("track_id", "second", "n") else np.float64)
                          for k in ROW_KEYS}, "zstd")
    assert len(bomb) < 1_000_000
    r = c.post(url, content=bomb, headers=headers)
    assert r.status_code == 422 and "at most 50,000 rows" in r.text, r.text[:300]
    wide = _arrow_stream({f"c{i}": np.zeros(10) for i in range(200)}, "zstd")
    assert c.post(url, content=wide, headers=headers).status_code == 422
    text = _arrow_stream({"track_id": ["x"] * 10}, "lz4")
    assert c.post(url, content=text, headers=headers).status_code == 422
    assert _counts(engine) == before
    # a compressed stream of a real batch is taken
    cols = track_seconds(fake_observations(seed=6))
    good = _arrow_stream({k: np.asarray(v, np.int64 if k in ("track_id", "second", "n") else np.float64)
                          for k, v in cols.items()}, "zstd", camera="zstd-cam")
    r = c.post(url, content=good, headers=headers)
    assert r.status_code == 200 and r.json()["inserted"] == len(cols["n"]), r.text[:300]


def test_a_declared_decompressed_size_is_checked_before_decompressing():
    """A batch may lie about its buffers: each compressed buffer starts with its decompressed length, read
    (and summed against the cap) before anything is decompressed."""
    import pyarrow as pa

    from service.routes.screenings import MAX_DECODED_BYTES, _batch_sizes, _read_bounded, _TooBig

    stream = _arrow_stream({"second": np.arange(1000, dtype=np.int64)}, "zstd")
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(stream))
    reader.read_next_message()
    message = reader.read_next_message()
    meta, body = message.metadata.to_pybytes(), message.body.to_pybytes()
    length, sizes = _batch_sizes(meta, body)
    assert length == 1000 and 8000 in sizes
    start = stream.index(body)
    data_offset = [i for i in range(0, len(body) - 8, 8) if struct.unpack_from("<q", body, i)[0] == 8000][0]
    forged = bytearray(stream)
    struct.pack_into("<q", forged, start + data_offset, MAX_DECODED_BYTES * 40)
    with pytest.raises(_TooBig, match="decompress"):
        _read_bounded(pa.py_buffer(bytes(forged)))


class Served:
    """The app under uvicorn (as `audience serve` runs it) in a thread."""

    def __init__(self, app, header_timeout_s=10.0):
        import uvicorn

        from service.server import config

        self.server = uvicorn.Server(config(app, "127.0.0.1", 0, header_timeout_s=header_timeout_s,
                                           log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _keyed_app(tmp_path, limits=Limits()):
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    app = create_app(engine, min_audience=1, limits=limits)
    with TestClient(app) as c:
        cid = c.post("/api/v1/contents", json={"title": "A", "duration_s": 30}).json()["id"]
        sid = c.post("/api/v1/screenings", json={"content_id": cid}).json()["id"]
        c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
    return app, engine, sid, _keys(engine, app, [cid])


def _events(stream):
    name = None
    for line in stream.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def test_live_streams_are_bounded_per_key_and_end_when_the_key_is_revoked(tmp_path):
    app, engine, sid, keys = _keyed_app(tmp_path, Limits(live_streams_per_key=2, live_key_recheck_s=0.5))
    with Served(app) as srv, httpx.Client(base_url=srv.url, timeout=20) as c:
        live = f"/api/v1/screenings/{sid}/live"
        params = {"access_token": keys["reader"], "interval": 0.5}
        assert c.get(live, params={**params, "interval": 0.2}).status_code == 422
        with c.stream("GET", live, params=params) as one, c.stream("GET", live, params=params) as two:
            assert one.status_code == two.status_code == 200
            third = c.get(live, params=params)
            assert third.status_code == 429 and "Retry-After" in third.headers, third.text
            events = _events(one)
            assert next(events)[0] == "points"
            with Session(engine) as s:
                auth.revoke_key(s, [k.id for k in auth.list_keys(s) if k.name == "reader"][0])
            rest = list(events)  # the stream ends by itself
            assert rest[-1][0] == "error" and rest[-1][1]["status"] == 401
        # closed streams give their places back
        with c.stream("GET", live, params={**params, "access_token": keys["admin"]}) as again:
            assert again.status_code == 200
        deadline = time.monotonic() + 10
        while app.state.live_streams._open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.live_streams._open == {}


def _recv_all(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False


def test_slow_headers_and_slow_bodies_time_out(tmp_path):
    app, engine, sid, keys = _keyed_app(tmp_path, Limits(body_timeout_s=1.0))
    with Served(app, header_timeout_s=1.0) as srv:
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:  # slowloris: headers never end
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            data, closed = _recv_all(sock, 10)
            assert closed and data == b""
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:  # a body that stops arriving
            sock.sendall(b"POST /api/v1/contents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: Bearer " + keys["admin"].encode() + b"\r\nContent-Length: 100\r\n\r\n{\"ti")
            data, _ = _recv_all(sock, 10)
            assert data.startswith(b"HTTP/1.1 408"), data[:200]
        assert httpx.get(srv.url + "/healthz").status_code == 200


def _vm_hwm_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _start_serve(db, port, *extra):
    return subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--db", db, "--port", str(port), *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_up(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


def test_an_unauthenticated_120_mb_body_is_refused_on_its_headers(tmp_path):
    """The server answers 401 having read the headers and at most a little of the body, and its peak
    memory does not grow with the body (main parsed all 120 MB first: 856 MB)."""
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert run_cli("keys", "--db", db, "create", "--name", "ops", "--scope", "admin").returncode == 0
    port = free_port()
    server = _start_serve(db, port)
    try:
        assert _wait_up(f"http://127.0.0.1:{port}", server)
        before = _vm_hwm_kb(server.pid)
        size = 120 * 2 ** 20
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /api/v1/contents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(size).encode() + b"\r\n\r\n")
            sent = 0
            sock.settimeout(10)
            try:
                while sent < size:  # keep sending until the server answers and closes
                    sock.sendall(b"[" * 2 ** 16)
                    sent += 2 ** 16
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass
            data, _ = _recv_all(sock, 10)
        assert data.startswith(b"HTTP/1.1 401"), data[:200]
        assert sent < size / 2, sent  # it did not wait for the body
        grown_mb = (_vm_hwm_kb(server.pid) - before) / 1024
        assert grown_mb < 40, grown_mb
    finally:
        server.terminate()
        server.wait(timeout=10)


# ---- item 7: the database and the command line -------------------------------------------------------------

def test_a_locked_sqlite_during_ingest_answers_503_with_retry_after(tmp_path):
    import sqlite3

    path = tmp_path / "l.db"
    engine = make_engine(f"sqlite:///{path}", lock_timeout_s=0.3)
    with TestClient(create_app(engine, min_audience=1)) as c:
        cid = c.post("/api/v1/contents", json={"title": "A", "duration_s": 30}).json()["id"]
        sid = c.post("/api/v1/screenings", json={"content_id": cid}).json()["id"]
        before = _counts(engine)
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            r = c.post(f"/api/v1/screenings/{sid}/stats",
                       json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
            assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "locked" in r.json()["detail"], r.text
            r = c.post(f"/api/v1/screenings/{sid}/gaps", json={"camera": "c", "start_s": 1, "end_s": 2})
            assert r.status_code == 503
        finally:
            locker.rollback()
            locker.close()
        assert _counts(engine) == before
        assert c.post(f"/api/v1/screenings/{sid}/stats",
                      json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))}).status_code == 200


def test_serve_on_a_damaged_database_file_says_one_line_and_exits_8(tmp_path):
    good = tmp_path / "good.db"
    engine = make_engine(f"sqlite:///{good}")
    with TestClient(create_app(engine)) as c:
        c.post("/api/v1/contents", json={"title": "A", "duration_s": 30})
    engine.dispose()
    for name, data in (("truncated.db", good.read_bytes()[:1500]), ("text.db", b"not a database at all\n" * 100)):
        (tmp_path / name).write_bytes(data)
        r = run_cli("serve", "--db", f"sqlite:///{tmp_path / name}", "--port", free_port())
        assert r.returncode == 8, (r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "database" in r.stderr, r.stderr


def test_two_serves_started_together_on_a_new_sqlite_file_both_come_up(tmp_path):
    for attempt in range(2):
        db = f"sqlite:///{tmp_path / f'new{attempt}.db'}"
        ports = [free_port(), free_port()]
        servers = [_start_serve(db, port) for port in ports]
        try:
            up = [_wait_up(f"http://127.0.0.1:{port}", s) for port, s in zip(ports, servers)]
            assert up == [True, True], [s.stderr.read() if s.poll() is not None else "" for s in servers]
        finally:
            for s in servers:
                s.terminate()
                s.wait(timeout=10)


def _png_header_only(width, height):
    """A PNG whose header claims width x height (an 875 KB file of zeros can claim 30000 x 30000)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 30001 * 8)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [30_000, 100_000])
def test_analyze_refuses_an_image_claiming_too_many_pixels_before_decoding_it(tmp_path, side):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(side, side))
    r = run_cli("analyze", path, "--out", tmp_path / "out")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "pixel" in r.stderr, r.stderr


def test_analyze_refuses_a_fifo_without_hanging(tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    r = subprocess.run([sys.executable, "-m", "service.cli", "analyze", str(fifo), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 4 and "not a regular file" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---- item 3: the payload in a real browser -----------------------------------------------------------------

def test_stored_payloads_never_run_in_the_dashboard(tmp_path):
    from test_dashboard import CHROMIUM, Server

    if CHROMIUM is None:
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    with Server(tmp_path / "x.db") as srv:
        url = srv.url
        srv.app.state.min_audience = 1
        cid = httpx.post(f"{url}/api/v1/contents", json={"title": f"Ad {XSS}", "duration_s": 30}).json()["id"]
        sid = httpx.post(f"{url}/api/v1/screenings", json={"content_id": cid, "venue": XSS,
                                                           "labels": {"cut": XSS, XSS[:60]: "a"}}).json()["id"]
        r = httpx.post(f"{url}/api/v1/screenings/{sid}/stats",
                       json={"camera": "cam1", "columns": as_lists(track_seconds(fake_observations(seconds=10)))})
        assert r.status_code == 200
        # the request is refused now ...
        r = httpx.put(f"{url}/api/v1/screenings/{sid}/sources/cam1",
                      json={"state": "running", "detail": {"analysis_fps": XSS}})
        assert r.status_code == 422
        # ... a camera name is free text, and a row stored before the fix holds the payload in detail
        camera = XSS.replace('"', "'")
        assert httpx.put(f"{url}/api/v1/screenings/{sid}/sources/{camera}",
                         json={"state": "running", "detail": {"analysis_fps": 2.0}}).status_code == 200
        with Session(srv.app.state.engine) as s:
            store.set_source_state(s, sid, "old-row", "running", {"analysis_fps": XSS, "frames_dropped": XSS})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            violations, errors = [], []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_selector("body[data-state=ready]")
            page.select_option("#compare", "label:cut")
            page.wait_for_selector("body[data-state=ready]")
            page.select_option("#live-screening", str(sid))
            page.check("#live")
            page.wait_for_selector("#sources .badge")
            if page.locator("#moments li[data-t]").count():
                page.locator("#moments li[data-t]").first.click()  # the readout names the series
            page.wait_for_timeout(500)
            assert page.evaluate("window.__xss") is None
            assert page.locator("img").count() == 0  # no element was made from the payloads
            assert XSS in page.inner_text("#screenings") and XSS in page.inner_text("#content")
            assert camera in page.inner_text("#sources")
            assert "old-row: running" in page.inner_text("#sources")
            names = page.evaluate("document.getElementById('chart').data.filter(d => d.meta === 'mean' && "
                                  "d.name.startsWith('cut=')).map(d => d.name)")
            assert names == ["cut=" + XSS.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")]
            assert violations == [] and errors == [], (violations, errors)
            # and were a payload to reach the page as markup, the policy would still stop it
            page.evaluate(f"""() => {{
                const s = document.createElement('script'); s.textContent = 'window.__xss = 1'; document.body.append(s);
                document.getElementById('readout').insertAdjacentHTML('beforeend', {json.dumps(XSS)});
            }}""")
            page.wait_for_timeout(500)
            assert page.evaluate("window.__xss") is None
            assert any("Content Security Policy" in v for v in violations)
            # the API docs still work under their policies
            for path, ready in (("/docs", ".swagger-ui .opblock"), ("/redoc", "[data-section-id]")):
                violations.clear()
                page.goto(url + path)
                page.wait_for_selector(ready, timeout=30000)
                # blocked: ReDoc's footer logo from its CDN (the page works offline); nothing else
                assert [v for v in violations if "cdn.redoc.ly" not in v] == [], (path, violations)
            browser.close()
