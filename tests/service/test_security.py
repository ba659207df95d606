"""Access control (API keys, scopes, content limits, loopback rule), retention (purge) and the
numbers-only rule, tried for real."""
import json
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from builders import FIXTURES, ROOT, fake_observations, pg_engine, run_cli, stat_rows
from service import auth
from service.app import create_app
from vision.stats import as_lists, track_seconds


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def keyed(request):
    """A service with data in two contents and keys of every kind, on SQLite and PostgreSQL."""
    cleanup = None
    if request.param == "sqlite":
        engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        engine, cleanup = pg_engine()
    app = create_app(engine, min_audience=1)
    with TestClient(app) as c:
        ids = []
        for title in ("Ad A", "Ad B"):  # while no key exists the service is open
            cid = c.post("/api/v1/contents", json={"title": title, "duration_s": 30}).json()["id"]
            sid = c.post("/api/v1/screenings", json={"content_id": cid}).json()["id"]
            c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
            ids.append((cid, sid))
        with Session(engine) as s:
            keys = {name: auth.create_key(s, name, scopes, contents)[1] for name, scopes, contents in (
                ("admin", ["admin"], None), ("reader", ["read"], None), ("ingester", ["ingest"], None),
                ("reader-b", ["read"], [ids[1][0]]), ("revoked", ["read"], None))}
            auth.revoke_key(s, auth.list_keys(s)[-1].id)
        yield c, ids, keys, engine
    engine.dispose()
    if cleanup:
        cleanup()


def test_scopes_and_content_limits(keyed):
    c, ((a, sa), (b, sb)), keys, engine = keyed
    curve = f"/api/v1/contents/{a}/curves"
    assert c.get(curve).status_code == 401 and "API key" in c.get(curve).json()["detail"]
    assert c.get(curve, headers=bearer("aud_nonsense")).status_code == 401
    assert c.get(curve, headers=bearer(keys["revoked"])).status_code == 401
    assert c.get(curve, headers=bearer(keys["reader"])).status_code == 200
    assert c.get(curve, headers={"X-API-Key": keys["reader"]}).status_code == 200
    assert c.get(curve, params={"access_token": keys["reader"]}).status_code == 401  # only the event stream
    rows = stat_rows(track_seconds(fake_observations(seed=5, source="cam2")))
    stats = f"/api/v1/screenings/{sa}/stats"
    assert c.post(stats, json={"camera": "cam2", "rows": rows}, headers=bearer(keys["reader"])).status_code == 403
    assert c.post(stats, json={"camera": "cam2", "rows": rows}, headers=bearer(keys["ingester"])).status_code == 200
    assert c.get(f"/api/v1/screenings/{sa}", headers=bearer(keys["ingester"])).status_code == 200
    assert c.get(curve, headers=bearer(keys["ingester"])).status_code == 403
    assert c.post("/api/v1/contents", json={"title": "x", "duration_s": 1},
                  headers=bearer(keys["reader"])).status_code == 403
    assert c.delete(f"/api/v1/screenings/{sa}", headers=bearer(keys["ingester"])).status_code == 403
    # per-track data: admin only
    tracks = f"/api/v1/screenings/{sa}/tracks"
    assert c.get(tracks, headers=bearer(keys["reader"])).status_code == 403
    got = c.get(tracks, headers=bearer(keys["admin"])).json()
    assert set(got["camera"]) == {"c", "cam2"} and len(got["track_id"]) == len(got["second"]) > 0
    # a key limited to content B sees B only; A does not exist for it
    limited = bearer(keys["reader-b"])
    assert [x["id"] for x in c.get("/api/v1/contents", headers=limited).json()] == [b]
    assert [x["id"] for x in c.get("/api/v1/screenings", headers=limited).json()] == [sb]
    assert c.get(curve, headers=limited).status_code == 404
    assert c.get(f"/api/v1/screenings/{sa}/gaps", headers=limited).status_code == 404
    assert c.get(f"/api/v1/contents/{b}/curves", headers=limited).status_code == 200
    assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200  # no data behind these


def test_keys_are_stored_hashed_and_managed_from_the_cli(tmp_path):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    r = run_cli("keys", "--db", db, "create", "--name", "venue box", "--scope", "ingest", "--content", 3)
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("aud_") and len(secret) > 40 and "shown only now" in r.stderr
    listed = run_cli("keys", "--db", db, "list").stdout
    assert "venue box" in listed and "ingest" in listed and secret not in listed and secret[:10] in listed
    raw = (tmp_path / "k.db").read_bytes()
    assert secret.encode() not in raw and auth.hash_key(secret).encode() in raw
    assert run_cli("keys", "--db", db, "revoke", 1).returncode == 0
    assert run_cli("keys", "--db", db, "revoke", 9).returncode == 1
    bad = run_cli("keys", "--db", db, "create", "--name", "x", "--scope", "root")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_serve_refuses_other_addresses_without_keys_and_clients_send_keys(tmp_path):
    db = f"sqlite:///{tmp_path / 's.db'}"
    refused = run_cli("serve", "--db", db, "--host", "0.0.0.0", "--port", 18764)
    assert refused.returncode == 2 and "refusing" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    admin = run_cli("keys", "--db", db, "create", "--name", "ops", "--scope", "admin").stdout.strip()
    ingest = run_cli("keys", "--db", db, "create", "--name", "box", "--scope", "ingest").stdout.strip()
    from _bench import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--db", db, "--host", "0.0.0.0",
                               "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        cid = httpx.post(url + "/api/v1/contents", json={"title": "t", "duration_s": 9}, headers=bearer(admin)).json()["id"]
        sid = httpx.post(url + "/api/v1/screenings", json={"content_id": cid}, headers=bearer(admin)).json()["id"]
        clip = FIXTURES / "two_faces.mp4"
        denied = run_cli("analyze", clip, "--out", tmp_path / "o1", "--screening", sid, "--api", url)
        assert denied.returncode == 8 and len(denied.stderr.strip().splitlines()) == 1
        ok = run_cli("analyze", clip, "--out", tmp_path / "o2", "--screening", sid, "--api", url, "--api-key", ingest)
        assert ok.returncode == 0, ok.stderr
        stored = httpx.get(f"{url}/api/v1/screenings/{sid}/tracks", headers=bearer(admin)).json()
        assert len(stored["track_id"]) == json.loads((tmp_path / "o2" / "summary.json").read_text())["published"]["inserted"]
        # the live event stream takes the key as access_token (browsers cannot add headers to it)
        with httpx.stream("GET", f"{url}/api/v1/screenings/{sid}/live", params={"access_token": admin}) as stream:
            assert stream.status_code == 200
            assert next(stream.iter_lines()).startswith("event: points")
        assert httpx.get(f"{url}/api/v1/screenings/{sid}/live").status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_purge_deletes_old_screenings_and_everything_derived(tmp_path):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import func, select
    from sqlmodel import select as model_select

    from service.db import make_engine
    from service.models import Content, Screening, camera_second, content_second, track_second

    db = f"sqlite:///{tmp_path / 'p.db'}"
    engine = make_engine(db)
    with TestClient(create_app(engine, min_audience=1)) as c:
        old_c = c.post("/api/v1/contents", json={"title": "old", "duration_s": 9}).json()["id"]
        new_c = c.post("/api/v1/contents", json={"title": "new", "duration_s": 9}).json()["id"]
        long_ago = (datetime.now(timezone.utc) - timedelta(days=100)).isoformat()
        old_s = c.post("/api/v1/screenings", json={"content_id": old_c, "started_at": long_ago}).json()["id"]
        mixed_old = c.post("/api/v1/screenings", json={"content_id": new_c, "started_at": long_ago}).json()["id"]
        fresh = c.post("/api/v1/screenings", json={"content_id": new_c}).json()["id"]
        for sid in (old_s, mixed_old, fresh):
            c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
        with Session(engine) as s:
            for content in s.exec(model_select(Content)).all():
                content.created_at = datetime.now(timezone.utc) - timedelta(days=100)
                s.add(content)
            s.commit()
        dry = run_cli("purge", "--db", db, "--older-than", 30, "--dry-run")
        assert dry.returncode == 0 and "would delete 2 screening(s)" in dry.stderr
        r = run_cli("purge", "--db", db, "--older-than", 30)
        assert r.returncode == 0 and "deleted 2 screening(s)" in r.stderr and "1 content(s)" in r.stderr, r.stderr
        with Session(engine) as s:
            assert [x.id for x in s.exec(model_select(Screening)).all()] == [fresh]
            assert [x.id for x in s.exec(model_select(Content)).all()] == [new_c]
            for table in (track_second, camera_second):
                ids = {row[0] for row in s.execute(select(table.c.screening_id)).all()}
                assert ids == {fresh}
            assert s.execute(select(func.count()).select_from(content_second)).scalar() == 4
        assert c.get(f"/api/v1/contents/{new_c}/curves").json()["n"] == [5] * 4  # the fresh screening only


# --- issue 16, items 1, 5, 6: a hostile test of main, replayed --------------------------------------------

NON_CANONICAL = ("%2B{}", "{}.0", "%20{}", "0_{}", "%EF%BC%91", "%C2%B2", "{}%20", "0{}")  # +1 1.0 ' 1' 0_1 １ ² '1 ' 01


def test_content_limited_keys_cannot_reach_other_contents_through_odd_ids(keyed):
    c, ((a, sa), (b, sb)), keys, engine = keyed
    assert (a, sa) == (1, 1)  # the fullwidth and superscript forms below stand for 1
    with Session(engine) as s:
        limited = {name: bearer(auth.create_key(s, name, scopes, [b])[1]) for name, scopes in (
            ("admin-b", ["admin"]), ("ingest-b", ["ingest"]), ("read-b", ["read"]))}
    rows = stat_rows(track_seconds(fake_observations(seed=9, source="evil")))
    for form in NON_CANONICAL:
        s_id, c_id = form.format(sa), form.format(a)
        attempts = [
            ("get", f"/api/v1/screenings/{s_id}/tracks", limited["admin-b"], None),
            ("get", f"/api/v1/screenings/{s_id}", limited["read-b"], None),
            ("get", f"/api/v1/screenings/{s_id}/gaps", limited["read-b"], None),
            ("get", f"/api/v1/screenings/{s_id}/sources", limited["read-b"], None),
            ("post", f"/api/v1/screenings/{s_id}/stats", limited["ingest-b"], {"camera": "evil", "rows": rows}),
            ("post", f"/api/v1/screenings/{s_id}/gaps", limited["ingest-b"],
             {"camera": "evil", "start_s": 1, "end_s": 2}),
            ("put", f"/api/v1/screenings/{s_id}/sources/evil", limited["ingest-b"], {"state": "running"}),
            ("get", f"/api/v1/contents/{c_id}", limited["read-b"], None),
            ("get", f"/api/v1/contents/{c_id}/curves", limited["read-b"], None),
            ("get", f"/api/v1/contents/{c_id}/curves?format=parquet", limited["read-b"], None),
            ("get", f"/api/v1/contents/{c_id}/compare", limited["read-b"], None),
            ("get", f"/api/v1/contents/{c_id}/moments", limited["read-b"], None),
            ("get", f"/api/v1/contents/{c_id}/norms?screening={sa}", limited["read-b"], None),
            ("patch", f"/api/v1/contents/{c_id}", limited["admin-b"], {"title": "owned"}),
            ("delete", f"/api/v1/contents/{c_id}", limited["admin-b"], None),
            ("delete", f"/api/v1/screenings/{s_id}", limited["admin-b"], None),
        ]
        for method, url, headers, body in attempts:
            r = getattr(c, method)(url, headers=headers, **({"json": body} if body is not None else {}))
            assert r.status_code in (404, 422), (method, url, r.status_code, r.text[:200])
        with c.stream("GET", f"/api/v1/screenings/{s_id}/live", headers=limited["read-b"]) as r:
            assert r.status_code in (404, 422), (s_id, r.status_code)
    # nothing of the above reached content A: its data, title and camera list are as they were
    admin = bearer(keys["admin"])
    assert c.get(f"/api/v1/contents/{a}", headers=admin).json()["title"] == "Ad A"
    assert set(c.get(f"/api/v1/screenings/{sa}/tracks", headers=admin).json()["camera"]) == {"c"}
    assert c.get(f"/api/v1/screenings/{sa}/gaps", headers=admin).json() == []
    assert c.get(f"/api/v1/screenings/{sa}/sources", headers=admin).json() == []
    # the canonical forms behave as before: B is reachable, A is not
    assert c.get(f"/api/v1/contents/{b}/curves", headers=limited["read-b"]).status_code == 200
    assert c.get(f"/api/v1/screenings/{sb}/tracks", headers=limited["admin-b"]).status_code == 200
    assert c.get(f"/api/v1/screenings/{sa}/tracks", headers=limited["admin-b"]).status_code == 404
    # an id that resolves to nothing fails closed for a limited key (and is a plain 404 for the others)
    assert c.get("/api/v1/screenings/999/gaps", headers=limited["read-b"]).status_code == 404
    assert c.get("/api/v1/screenings/99999999999999999999/gaps", headers=admin).status_code == 422


def test_revoking_every_key_leaves_the_service_closed_until_an_explicit_reopen(keyed):
    c, ((a, sa), _), keys, engine = keyed
    curve = f"/api/v1/contents/{a}/curves"
    with Session(engine) as s:
        for key in auth.list_keys(s):
            auth.revoke_key(s, key.id)
    for headers in ({}, bearer(keys["admin"]), bearer("aud_anything")):
        assert c.get(curve, headers=headers).status_code == 401
        assert c.post("/api/v1/contents", json={"title": "x", "duration_s": 1}, headers=headers).status_code == 401
    with Session(engine) as s:
        with pytest.raises(ValueError):
            auth.reopen(s, "")  # a reason is required
        auth.reopen(s, "demo machine, loopback only")
        state = s.get(auth.AuthState, 1)
        assert not state.keys_required and "demo machine" in state.reason and state.changed_at is not None
    assert c.get(curve).status_code == 200  # the explicit decision reopens it (loopback app)
    with Session(engine) as s:  # a new key closes it again at once: no grace period
        auth.create_key(s, "new", ["read"])
    assert c.get(curve).status_code == 401
    with Session(engine) as s:
        with pytest.raises(ValueError):
            auth.reopen(s, "a key is still active")


def test_the_first_key_closes_the_service_at_once():
    engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    with TestClient(create_app(engine, min_audience=1)) as c:
        assert c.get("/api/v1/contents").status_code == 200  # open, and possibly remembered
        with Session(engine) as s:
            auth.create_key(s, "first", ["admin"])
        assert c.get("/api/v1/contents").status_code == 401  # the very next request


def test_a_public_server_never_answers_as_an_open_service():
    engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    with TestClient(create_app(engine, min_audience=1, public=True)) as c:
        r = c.get("/api/v1/contents")
        assert r.status_code == 401 and "non-loopback" in r.json()["detail"]
        with Session(engine) as s:
            key = auth.create_key(s, "ops", ["admin"])[1]
            assert c.get("/api/v1/contents", headers=bearer(key)).status_code == 200
            auth.revoke_key(s, 1)
            auth.reopen(s, "testing")  # reopened by an operator: still refused on a public bind
        assert c.get("/api/v1/contents").status_code == 401


def test_reopen_from_the_cli_is_recorded(tmp_path):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    run_cli("keys", "--db", db, "create", "--name", "ops", "--scope", "admin")
    refused = run_cli("keys", "--db", db, "reopen", "--reason", "done")
    assert refused.returncode == 1 and "revoke them first" in refused.stderr
    assert run_cli("keys", "--db", db, "revoke", 1).returncode == 0
    # still closed: a public serve is refused (exit 2), reopening needs its own command
    assert run_cli("serve", "--db", db, "--host", "0.0.0.0", "--port", 18765).returncode == 2
    ok = run_cli("keys", "--db", db, "reopen", "--reason", "back to the lab laptop")
    assert ok.returncode == 0 and "recorded" in ok.stderr


@pytest.mark.parametrize("kind", ["sqlite-file", "sqlite-memory"])
def test_deleted_ids_are_never_reused_so_no_cache_or_key_sees_a_successor(tmp_path, kind):
    from service.db import make_engine

    engine = (make_engine(f"sqlite:///{tmp_path / 'ids.db'}") if kind == "sqlite-file" else
              create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool))
    with TestClient(create_app(engine, min_audience=1)) as c:
        cid = c.post("/api/v1/contents", json={"title": "old", "duration_s": 30}).json()["id"]
        sid = c.post("/api/v1/screenings", json={"content_id": cid}).json()["id"]
        c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
        old_curve = c.get(f"/api/v1/contents/{cid}/curves").json()  # cached now
        assert old_curve["n"][0] > 0
        with Session(engine) as s:
            limited = auth.create_key(s, "old-only", ["read"], [cid])[1]
            admin = auth.create_key(s, "ops", ["admin"])[1]
        assert c.delete(f"/api/v1/contents/{cid}", headers=bearer(admin)).status_code in (200, 204)
        new = c.post("/api/v1/contents", json={"title": "new", "duration_s": 30}, headers=bearer(admin)).json()["id"]
        new_s = c.post("/api/v1/screenings", json={"content_id": new}, headers=bearer(admin)).json()["id"]
        assert new != cid and new_s != sid
        assert not any(c.get(f"/api/v1/contents/{new}/curves", headers=bearer(admin)).json()["n"])  # not the old data
        assert c.get(f"/api/v1/contents/{new}/curves", headers=bearer(limited)).status_code == 404
        assert c.get(f"/api/v1/contents/{cid}/curves", headers=bearer(admin)).status_code == 404
