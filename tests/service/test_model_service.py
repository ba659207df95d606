"""The audience model through the API and the CLI, on SQLite and PostgreSQL: a fit as a background job,
the imputed curve, forecasts, reaction types under the minimum audience size, admin-only latents, 404s."""
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from builders import pg_engine, run_cli
from service.app import create_app
from service.auth import create_key
from vision.reaction_model.simulate import screening_batches, simulate

pytest.importorskip("jax")
SETTINGS = {"max_epochs": 4, "latent": 4, "hidden": 16, "seed": 0}


def _engine(kind):
    if kind == "sqlite":
        return create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool), None
    return pg_engine()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request):
    engine, cleanup = _engine(request.param)
    yield engine
    engine.dispose()
    if cleanup:
        cleanup()


def load_season(client, season, duration_s):
    content = client.post("/api/v1/contents", json={"title": "sim", "duration_s": duration_s}).json()["id"]
    ids = []
    for s, cut in enumerate(season.cuts):
        sid = client.post("/api/v1/screenings", json={"content_id": content, "labels": {"cut": cut}}).json()["id"]
        for batch in screening_batches(season, s):
            r = client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "cam1", "columns": batch})
            assert r.status_code == 200, r.text
        ids.append(sid)
    return content, ids


def fitted(engine, min_audience):
    client = TestClient(create_app(engine, min_audience=min_audience))
    season = simulate(screenings=2, duration_s=40, viewers=(9, 9), seed=1)
    content, ids = load_season(client, season, 40)
    r = client.post(f"/api/v1/contents/{content}/model/fit", json=SETTINGS)
    assert r.status_code == 202, r.text
    job = r.json()
    status = client.get(f"/api/v1/contents/{content}/model/jobs/{job['job_id']}").json()  # the job ran after the answer
    assert status["status"] == "done", status
    return client, content, ids, status


def test_fit_job_imputed_forecast_and_types(engine):
    client, content, ids, job = fitted(engine, 1)
    assert job["summary"]["viewers"] == 18 and set(job["summary"]["validation_rmse"]) == {"content mean", "linear", "vae"}
    imp = client.get(f"/api/v1/contents/{content}/imputed?metrics=p_happiness,smile").json()
    assert len(imp["t"]) == 40 and imp["metrics"] == ["p_happiness", "smile"]
    assert all(p >= s for p, s in zip(imp["n_present"], imp["n_seen"]))
    assert all(v is not None for v in imp["imputed"]["smile"][1:-1])
    fc = client.get(f"/api/v1/contents/{content}/forecast?screening={ids[1]}&first_s=10&metrics=smile").json()
    assert fc["t"][0] == 10 and len(fc["t"]) == 30 and fc["viewers"] >= 1
    inside = [lo <= p <= hi for lo, p, hi in zip(fc["lower"]["smile"], fc["predicted"]["smile"], fc["upper"]["smile"])
              if p is not None]
    assert inside and all(inside) and fc["rmse"]["smile"] is not None
    types = client.get(f"/api/v1/contents/{content}/reaction-types?metrics=smile").json()
    assert sum(t["size"] for t in types["types"]) == 18 and types["hidden_types"] == 0
    assert len(types["divergence"]) == 40
    tracks = client.get(f"/api/v1/contents/{content}/model/tracks").json()
    assert len(tracks["viewers"]) == 18 and len(tracks["viewers"][0]["latent"]) == 4
    # deleting a screening deletes the fits built on it (nothing derived from it stays)
    assert client.delete(f"/api/v1/screenings/{ids[0]}").status_code == 204
    assert client.get(f"/api/v1/contents/{content}/imputed").status_code == 404
    assert client.get(f"/api/v1/contents/{content}/model/jobs/{job['job_id']}").status_code == 404


def test_errors_and_not_found(engine):
    client = TestClient(create_app(engine, min_audience=1))
    content = client.post("/api/v1/contents", json={"title": "empty", "duration_s": 30}).json()["id"]
    for path in ("imputed", "reaction-types", "forecast?screening=1", "model/tracks"):
        r = client.get(f"/api/v1/contents/{content}/{path}")
        assert r.status_code == 404 and "no fitted model" in r.json()["detail"]
        assert client.get(f"/api/v1/contents/999/{path}").status_code == 404
    assert client.post("/api/v1/contents/999/model/fit").status_code == 404
    job = client.post(f"/api/v1/contents/{content}/model/fit", json=SETTINGS).json()  # no data: the job fails
    status = client.get(f"/api/v1/contents/{content}/model/jobs/{job['job_id']}").json()
    assert status["status"] == "failed" and "too little per-track data" in status["error"]
    assert client.get(f"/api/v1/contents/{content}/model/jobs/{job['job_id'] + 1}").status_code == 404
    assert client.post(f"/api/v1/contents/{content}/model/fit", json={"max_epochs": 0}).status_code == 422
    assert client.get(f"/api/v1/contents/{content}/imputed?metrics=valence").status_code == 422


def test_minimum_audience_hides_small_types_and_screenings_and_latents_are_admin_only(engine):
    client, content, ids, _ = fitted(engine, 5)
    types = client.get(f"/api/v1/contents/{content}/reaction-types").json()
    assert all(t["size"] >= 5 for t in types["types"])
    with Session(engine) as session:
        from service.reaction_store import latest_fit

        present = latest_fit(session, content)["products"]["type_present"]
    for t in types["types"]:  # a shown type's seconds with fewer than K of its viewers present are null
        assert all((v is None) == (n < 5) for v, n in zip(t["curve"]["p_happiness"], present[t["index"]]))
    imp = client.get(f"/api/v1/contents/{content}/imputed").json()
    for n, v, hidden in zip(imp["n_present"], imp["imputed"]["p_happiness"], imp["suppressed"]):
        assert (v is None) == (n < 5) and hidden == (0 < n < 5)
    for n, v in zip(imp["n_seen"], imp["observed"]["p_happiness"]):
        assert n >= 5 or v is None
    strict = TestClient(create_app(engine, min_audience=10))  # every screening has 9 viewers, every type fewer than 18
    r = strict.get(f"/api/v1/contents/{content}/forecast?screening={ids[0]}&first_s=10")
    assert r.status_code == 404 and "minimum audience" in r.json()["detail"]
    tight = TestClient(create_app(engine, min_audience=19)).get(f"/api/v1/contents/{content}/reaction-types").json()
    assert tight["types"] == [] and tight["hidden_types"] >= 1 and all(d is None for d in tight["divergence"])
    with Session(engine) as session:
        _, read = create_key(session, "reader", ["read"])
        _, admin = create_key(session, "admin", ["admin"])
    reader = {"Authorization": f"Bearer {read}"}
    assert client.get(f"/api/v1/contents/{content}/model/tracks", headers=reader).status_code == 403
    assert client.post(f"/api/v1/contents/{content}/model/fit", headers=reader).status_code == 403
    assert client.get(f"/api/v1/contents/{content}/reaction-types", headers=reader).status_code == 200
    ok = client.get(f"/api/v1/contents/{content}/model/tracks", headers={"Authorization": f"Bearer {admin}"})
    assert ok.status_code == 200 and len(ok.json()["viewers"]) == 18
    r = client.get(f"/api/v1/contents/{content}/forecast?screening={ids[0]}&first_s=40", headers=reader)
    assert r.status_code == 422
    other = client.post("/api/v1/contents", json={"title": "x", "duration_s": 5},
                        headers={"Authorization": f"Bearer {admin}"}).json()["id"]
    sid = client.post("/api/v1/screenings", json={"content_id": other}, headers={"Authorization": f"Bearer {admin}"}).json()["id"]
    assert client.get(f"/api/v1/contents/{content}/forecast?screening={sid}", headers=reader).status_code == 404


def test_cli_fit_and_one_line_errors(tmp_path):
    db = f"sqlite:///{tmp_path / 'm.db'}"
    missing = run_cli("model", "fit", "--db", db, "--content", "7")
    assert missing.returncode == 8 and missing.stderr.strip().count("\n") == 0 and "content 7 not found" in missing.stderr
    engine = create_engine(db)
    client = TestClient(create_app(engine, min_audience=1))
    empty = client.post("/api/v1/contents", json={"title": "empty", "duration_s": 30}).json()["id"]
    season = simulate(screenings=2, duration_s=30, viewers=(6, 6), seed=2)
    content, _ = load_season(client, season, 30)
    engine.dispose()
    nodata = run_cli("model", "fit", "--db", db, "--content", empty)
    assert nodata.returncode == 9 and nodata.stderr.strip().count("\n") == 0 and "too little" in nodata.stderr
    done = run_cli("model", "fit", "--db", db, "--content", content, "--epochs", "3", "--latent", "3")
    assert done.returncode == 0, done.stderr
    assert " viewers x 30 s x 12 metrics" in done.stderr and "held-out RMSE" in done.stderr
    bad = run_cli("model", "fit", "--db", db)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0


def test_fit_keeps_time_factors_per_cut_and_forecasts_with_the_screenings_cut():
    from service import reaction_store as rs

    engine, _ = _engine("sqlite")
    client = TestClient(create_app(engine, min_audience=1))
    season = simulate(screenings=2, duration_s=30, viewers=(12, 12), seed=2)  # 12 viewers a cut: above the minimum
    content, ids = load_season(client, season, 30)
    job = client.post(f"/api/v1/contents/{content}/model/fit", json=SETTINGS).json()
    assert client.get(f"/api/v1/contents/{content}/model/jobs/{job['job_id']}").json()["status"] == "done"
    with Session(engine) as session:
        state = rs.latest_fit(session, content)["state"]
        assert [str(g) for g in state["groups"]] == ["A", "B"] and state["D"].shape == (2, 30, 4)
        assert rs.screening_cut(session, ids[1]) == "B"
    fc = client.get(f"/api/v1/contents/{content}/forecast?screening={ids[1]}&first_s=5&metrics=smile")
    assert fc.status_code == 200 and fc.json()["rmse"]["smile"] is not None
