"""The HTTP API against real databases: SQLite always, PostgreSQL when AUDIENCE_TEST_PG names a server
(.ci/run starts one; outside CI the PostgreSQL cases are skipped when none is reachable)."""

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel, create_engine

from builders import FIXTURES, fake_observations, pg_engine, run_cli, stat_rows
from service.app import create_app
from vision.stats import VALUES, as_lists, track_seconds
from vision.curves import BucketStats


def second_aggregates(track_rows: list[dict]) -> list[dict]:
    """Reference in plain Python for what ingest computes in SQL: per (camera, second), k tracks and the
    sum / sum of squares of their per-second means (`m_<value>`, `mm_<value>`)."""
    out: dict[tuple[str, int], dict] = {}
    for r in track_rows:
        key = (r["camera"], r["second"])
        agg = out.setdefault(key, {"camera": key[0], "second": key[1], "k": 0,
                                   **{f"m_{v}": 0.0 for v in VALUES}, **{f"mm_{v}": 0.0 for v in VALUES}})
        agg["k"] += 1
        for v in VALUES:
            mean = r[f"s_{v}"] / r["n"]
            agg[f"m_{v}"] += mean
            agg[f"mm_{v}"] += mean * mean
    return [out[k] for k in sorted(out)]


def pooled_atoms(track_rows: list[dict], bucket: int, metrics) -> dict[str, np.ndarray]:
    """Reference for a bucket wider than 1 s: the face-seconds of its atoms pooled (n = sum of k, mean =
    sum of face-second means / n, CI from their sum of squares)."""
    from vision.stats import mean_ci95

    agg = second_aggregates(track_rows)
    b = np.array([r["second"] // bucket for r in agg])
    keys = np.unique(b)
    k = np.array([sum(r["k"] for r, x in zip(agg, b) if x == key) for key in keys], np.float64)
    out = {"t": keys * float(bucket), "n_faces": k.astype(np.int64)}
    for m in metrics:
        total = np.array([sum(r[f"m_{m}"] for r, x in zip(agg, b) if x == key) for key in keys])
        squares = np.array([sum(r[f"mm_{m}"] for r, x in zip(agg, b) if x == key) for key in keys])
        out[m], out[f"{m}_ci95"] = mean_ci95(k, total, squares)
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request):
    if request.param == "sqlite":
        engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
        cleanup = None
    else:
        engine, cleanup = pg_engine()
    with TestClient(create_app(engine, min_audience=1)) as c:  # the numbers; suppression has its own test
        yield c
    engine.dispose()
    SQLModel.metadata  # noqa: B018 - tables live in the throwaway schema / memory database
    if cleanup:
        cleanup()


def make_screening(client, labels=None, offset=0.0):
    content = client.post("/api/v1/contents", json={"title": "Ad", "duration_s": 60}).json()
    s = client.post("/api/v1/screenings", json={"content_id": content["id"], "content_offset_s": offset,
                                                "labels": labels or {}})
    assert s.status_code == 201, s.text
    return content["id"], s.json()["id"]


def test_crud_and_errors(client):
    assert client.get("/api/v1/contents/99").status_code == 404
    assert client.post("/api/v1/contents", json={"title": "", "duration_s": 10}).status_code == 422
    assert client.post("/api/v1/contents", json={"title": "x", "duration_s": -1}).status_code == 422
    assert client.post("/api/v1/screenings", json={"content_id": 99}).status_code == 404
    cid, sid = make_screening(client, {"cut": "B"})
    assert client.get(f"/api/v1/screenings/{sid}").json()["labels"] == {"cut": "B"}
    assert [s["id"] for s in client.get("/api/v1/screenings", params={"content_id": cid}).json()] == [sid]
    assert client.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "nope"}).status_code == 422
    assert client.get(f"/api/v1/contents/{cid}/curves", params={"bucket": 0}).status_code == 422
    assert client.get(f"/api/v1/contents/{cid}/curves", params={"segment": "novalue"}).status_code == 422
    assert client.delete(f"/api/v1/contents/{cid}").status_code == 204
    assert client.get(f"/api/v1/screenings/{sid}").status_code == 404
    assert "/api/v1/contents/{content_id}/curves" in client.get("/openapi.json").json()["paths"]


def test_ingest_is_idempotent_and_conflicts_write_nothing(client):
    cid, sid = make_screening(client)
    rows = stat_rows(track_seconds(fake_observations()))
    batch = {"camera": "cam1", "rows": rows}
    first = client.post(f"/api/v1/screenings/{sid}/stats", json=batch)
    assert first.json() == {"inserted": len(rows), "unchanged": 0}
    assert client.post(f"/api/v1/screenings/{sid}/stats", json=batch).json() == {"inserted": 0, "unchanged": len(rows)}
    before = client.get(f"/api/v1/contents/{cid}/curves").json()
    changed = [dict(r) for r in rows]
    changed[-1]["s_p_happiness"] += 1.0
    extra = dict(rows[0], track_id=99)
    r = client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "cam1", "rows": [extra] + changed})
    assert r.status_code == 409
    assert client.get(f"/api/v1/contents/{cid}/curves").json() == before  # the new track 99 was not written
    bad = dict(rows[0])
    del bad["n"]
    assert client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "rows": [bad]}).status_code == 422
    assert client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "rows": [rows[0], rows[0]]}).status_code == 422
    assert client.post("/api/v1/screenings/999/stats", json=batch).status_code == 404


@pytest.mark.parametrize("bucket", [1.0, 2.0])
def test_curves_equal_the_analysis_curves_and_merge_across_cameras(client, bucket):
    cid, sid = make_screening(client)
    a, b = fake_observations(seed=1, source="cam1"), fake_observations(n_tracks=3, seed=2, source="cam2")
    for cols in (a, b):
        camera = cols["source"][0]
        r = client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": camera, "columns": as_lists(track_seconds(cols))})
        assert r.status_code == 200, r.text
    if bucket == 1.0:  # at 1 s a bucket is one atom per camera: faces are the units, as in the analysis
        expected = BucketStats(bucket=bucket)
        expected.add_rows(a)
        expected.add_rows(b)
        want = expected.curves()
        faces = 8
    else:  # a wider bucket pools whole atoms: its units are face-seconds (see store.curve_sums)
        both = stat_rows(track_seconds(a), camera="cam1") + stat_rows(track_seconds(b), camera="cam2")
        want = pooled_atoms(both, int(bucket), ("p_happiness", "valence", "attention"))
        faces = 8 * int(bucket)
    params = {"metrics": "p_happiness,valence,attention", "bucket": bucket}
    got = client.get(f"/api/v1/contents/{cid}/curves", params=params).json()
    # the same screening named explicitly takes the per-screening path, not the content rollup
    named = client.get(f"/api/v1/contents/{cid}/curves", params={**params, "screenings": str(sid)}).json()
    for curve in (got, named):
        assert curve["t"] == want["t"].tolist()
        assert curve["n"] == want["n_faces"].tolist() == [faces] * len(curve["t"])
        for m in ("p_happiness", "valence", "attention"):
            assert np.allclose(curve["mean"][m], want[m], atol=1e-5)
            assert np.allclose(curve["ci95"][m], want[f"{m}_ci95"], atol=1e-5)


def test_screening_and_segment_filters(client):
    cid, s1 = make_screening(client, {"cut": "A"})
    s2 = client.post("/api/v1/screenings", json={"content_id": cid, "labels": {"cut": "B"}}).json()["id"]
    for sid, seed in ((s1, 1), (s2, 2)):
        client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations(seed=seed)))})
    all_ = client.get(f"/api/v1/contents/{cid}/curves").json()
    only_b = client.get(f"/api/v1/contents/{cid}/curves", params={"segment": "cut=B"}).json()
    by_id = client.get(f"/api/v1/contents/{cid}/curves", params={"screenings": str(s2)}).json()
    assert all_["screenings"] == [s1, s2] and only_b["screenings"] == [s2] and only_b == by_id
    assert all_["n"][0] == 10 and only_b["n"][0] == 5
    assert client.delete(f"/api/v1/screenings/{s2}").status_code == 204
    assert client.get(f"/api/v1/contents/{cid}/curves").json()["n"][0] == 5  # the content sums follow


def test_second_aggregates_are_sums_of_track_means(client):
    rows = stat_rows(track_seconds(fake_observations(n_tracks=2, seconds=1, per_second=2)), camera="c")
    agg = second_aggregates(rows)
    assert len(agg) == 1 and agg[0]["k"] == 2
    means = [r["s_smile"] / r["n"] for r in rows]
    assert agg[0]["m_smile"] == pytest.approx(sum(means))
    assert agg[0]["mm_smile"] == pytest.approx(sum(m * m for m in means))
    # what the database computes at ingest is the same
    from service.models import camera_second

    cid, sid = make_screening(client)
    client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "rows": rows})
    with client.app.state.engine.connect() as conn:
        stored = dict(conn.execute(camera_second.select()).one()._mapping)
    assert stored["k"] == 2
    for key in ("m_smile", "mm_smile", "m_valence", "mm_p_anger"):
        assert stored[key] == pytest.approx(agg[0][key])


def test_columnar_batches_equal_row_batches(client):
    cid, sid = make_screening(client)
    cols = as_lists(track_seconds(fake_observations()))
    rows = stat_rows(cols)
    r = client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": cols})
    assert r.json() == {"inserted": len(rows), "unchanged": 0}
    assert client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "rows": rows}).json()["unchanged"] == len(rows)
    for bad, reason in ((dict(cols, n=[0] * len(rows)), "n"), (dict(cols, second=[0.5] * len(rows)), "whole"),
                        ({k: v for k, v in cols.items() if k != "s_smile"}, "missing"),
                        (dict(cols, track_id=cols["track_id"][:-1]), "same length")):
        r = client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": bad})
        assert r.status_code == 422 and reason in r.json()["detail"], r.text
    both = client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": cols, "rows": rows})
    assert both.status_code == 422


def test_analyze_writes_to_a_database_idempotently(tmp_path):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    from service.db import make_engine

    with TestClient(create_app(make_engine(db), min_audience=1)) as c:
        cid, sid = make_screening(c)
    args = ["analyze", FIXTURES / "two_faces.mp4", "--fps", "5", "--db", db, "--screening", sid, "--content", cid]
    r = run_cli(*args, "--out", tmp_path / "o1")
    assert r.returncode == 0, r.stderr
    r = run_cli(*args, "--out", tmp_path / "o2")  # a replay stores nothing twice
    assert r.returncode == 0, r.stderr
    assert pd.read_json(tmp_path / "o2" / "summary.json", typ="series")["published"]["inserted"] == 0
    with TestClient(create_app(make_engine(db), min_audience=1)) as c:
        got = c.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "p_happiness"}).json()
    want = pd.read_csv(tmp_path / "o1" / "curves.csv")
    assert got["n"] == want["n_faces"].tolist()
    assert np.allclose(got["mean"]["p_happiness"], want["p_happiness"], atol=1e-5)
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--db", db, "--screening", 99, "--out", tmp_path / "o3")
    assert r.returncode == 8 and "screening 99 not found" in r.stderr
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--db", db, "--out", tmp_path / "o4")
    assert r.returncode == 2


def test_demo_analyses_the_sample_into_a_database(tmp_path):
    r = run_cli("demo", "--no-serve", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "curves.png").exists() and (tmp_path / "demo.db").exists()
    from service.db import make_engine

    with TestClient(create_app(make_engine(f"sqlite:///{tmp_path / 'demo.db'}"), min_audience=1)) as c:
        curve = c.get("/api/v1/contents/1/curves").json()
    assert curve["n"] == pd.read_csv(tmp_path / "curves.csv")["n_faces"].tolist()


def test_a_version_1_database_is_migrated_and_keeps_its_curves(tmp_path):
    from service.db import make_engine, migrate
    from service.models import SCHEMA_VERSION, content_revision, content_second

    db = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(db)
    with TestClient(create_app(engine, min_audience=1)) as c:
        cid, sid = make_screening(c)
        c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
        want = c.get(f"/api/v1/contents/{cid}/curves").json()
    with engine.begin() as conn:  # make it look like a version-1 database
        conn.execute(text("UPDATE schemaversion SET version = 1"))
        content_second.drop(conn)
        content_revision.drop(conn)
    assert migrate(engine) == SCHEMA_VERSION
    with TestClient(create_app(engine, min_audience=1)) as c:
        assert c.get(f"/api/v1/contents/{cid}/curves").json() == want
    with engine.begin() as conn:
        conn.execute(text("UPDATE schemaversion SET version = 99"))
    with pytest.raises(RuntimeError, match="newer"):
        migrate(engine)


def test_compare_two_cuts(client):
    cid, s_a = make_screening(client, {"cut": "A"})
    s_b = client.post("/api/v1/screenings", json={"content_id": cid, "labels": {"cut": "B"}}).json()["id"]
    obs_a, obs_b = fake_observations(seed=1), fake_observations(n_tracks=4, seed=2)
    obs_a["p_happiness"] = obs_a["p_happiness"] * 0.5 + 0.5  # cut A lands better
    for sid, cols in ((s_a, obs_a), (s_b, obs_b)):
        client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(cols))})
    r = client.get(f"/api/v1/contents/{cid}/compare",
                   params={"metrics": "p_happiness", "a_segment": "cut=A", "b_segment": "cut=B"}).json()
    assert r["a_screenings"] == [s_a] and r["b_screenings"] == [s_b] and r["n_a"] == [5] * 4 and r["n_b"] == [4] * 4
    ca = client.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "p_happiness", "segment": "cut=A"}).json()
    cb = client.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "p_happiness", "segment": "cut=B"}).json()
    want = np.array(ca["mean"]["p_happiness"]) - np.array(cb["mean"]["p_happiness"])
    assert np.allclose(r["diff"]["p_happiness"], want)
    # the Welch interval is wider than either side's own and narrower than their sum
    ha, hb, hd = (np.array(x) for x in (ca["ci95"]["p_happiness"], cb["ci95"]["p_happiness"], r["ci95"]["p_happiness"]))
    assert (hd > np.maximum(ha, hb) * 0.7).all() and (hd < ha + hb).all()
    assert np.mean(r["diff"]["p_happiness"]) > 0
    assert client.get(f"/api/v1/contents/{cid}/compare", params={"a_segment": "bad"}).status_code == 422


def test_curve_export_as_csv_and_parquet(client):
    import io

    cid, sid = make_screening(client)
    client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
    params = {"metrics": "p_happiness,smile"}
    want = client.get(f"/api/v1/contents/{cid}/curves", params=params).json()
    r = client.get(f"/api/v1/contents/{cid}/curves", params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(r.text))
    assert list(table.columns) == ["t", "n", "suppressed", "p_happiness", "p_happiness_ci95", "smile", "smile_ci95"]
    assert np.allclose(table["smile"], want["mean"]["smile"])
    r = client.get(f"/api/v1/contents/{cid}/curves", params={**params, "format": "parquet"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert pd.read_parquet(io.BytesIO(r.content))["n"].tolist() == want["n"]
    assert client.get(f"/api/v1/contents/{cid}/curves", params={"format": "xml"}).status_code == 422


def test_find_moments_by_prominence_and_extent():
    from vision.stats import find_moments

    t = np.arange(20.0)
    y = np.array([0, 0, 1, 5, 1, 0, 0, 2, 2.5, 2, 0, 0, 0, 3, 3, 3, 0, 0, np.nan, 0])
    m = find_moments(t, y, 3)
    assert [x["t"] for x in m] == [3.0, 13.0, 8.0]
    assert m[0]["prominence"] == 5 and (m[0]["start"], m[0]["end"], m[0]["duration_s"]) == (3.0, 4.0, 1.0)
    assert m[1]["duration_s"] == 3.0 and m[2]["prominence"] == 2.5
    assert find_moments(t, np.zeros(20), 3) == []


def test_moments_and_norms_endpoints(client):
    cid, s1 = make_screening(client)
    ids = [s1] + [client.post("/api/v1/screenings", json={"content_id": cid}).json()["id"] for _ in range(3)]
    for k, sid in enumerate(ids):
        cols = fake_observations(seconds=10, seed=k)
        if k == 0:  # the first screening laughs at second 6
            cols["p_happiness"] = np.where(np.floor(cols["t"]) == 6, 0.99, 0.2).astype(np.float32)
        client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(cols))})
    m = client.get(f"/api/v1/contents/{cid}/moments", params={"metric": "p_happiness", "screenings": str(s1)}).json()
    assert m["moments"][0]["t"] == 6.0 and m["moments"][0]["duration_s"] == 1.0
    z = client.get(f"/api/v1/contents/{cid}/norms", params={"screening": s1, "metric": "p_happiness"}).json()
    assert z["others"] == ids[1:] and len(z["t"]) == 10
    assert z["z"][6] > 3 and max(z["z"][:6]) < -3  # above the norm at 6 s, below it (0.2 vs ~0.5) elsewhere
    assert client.get(f"/api/v1/contents/{cid}/norms", params={"screening": 999}).status_code == 404
    assert client.get(f"/api/v1/contents/{cid}/moments", params={"metric": "bogus"}).status_code == 422


def test_update_contents_and_screenings(client):
    cid, sid = make_screening(client, {"cut": "A"})
    r = client.patch(f"/api/v1/contents/{cid}", json={"title": "Ad v2"})
    assert r.status_code == 200 and r.json()["title"] == "Ad v2" and r.json()["duration_s"] == 60
    r = client.patch(f"/api/v1/screenings/{sid}", json={"labels": {"cut": "B"}, "venue": "Hall 2"})
    assert r.status_code == 200 and r.json()["labels"] == {"cut": "B"} and r.json()["venue"] == "Hall 2"
    assert client.get(f"/api/v1/contents/{cid}/curves", params={"segment": "cut=B"}).json()["screenings"] == [sid]
    assert client.patch(f"/api/v1/contents/{cid}", json={"duration_s": 0}).status_code == 422
    assert client.patch("/api/v1/screenings/999", json={"venue": "x"}).status_code == 404


def test_concurrent_replays_of_one_batch_store_it_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from service.db import make_engine
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    with TestClient(create_app(engine, min_audience=1)) as c:
        cid, sid = make_screening(c)
        batch = {"camera": "c", "columns": as_lists(track_seconds(fake_observations(n_tracks=20, seconds=20)))}
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: c.post(f"/api/v1/screenings/{sid}/stats", json=batch), range(8)))
        assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
        assert sum(r.json()["inserted"] for r in results) == 400
        assert c.get(f"/api/v1/contents/{cid}/curves").json()["n"] == [20] * 20


def test_api_docs_page_needs_no_network(client):
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and not any(a.startswith(("http://", "https://", "//")) for a in assets), assets
    for asset in assets:
        if asset.endswith((".js", ".css")):
            assert client.get(asset).status_code == 200, asset


def test_cached_curves_follow_writes_made_outside_this_server(client):
    """Curves are cached per content revision: a write by another process (here: the store called on the
    server's database directly, as `analyze --db` does) and a delete both change the next answer."""
    from sqlmodel import Session

    from service import store

    cid, sid = make_screening(client)
    client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
    first = client.get(f"/api/v1/contents/{cid}/curves").json()
    assert client.get(f"/api/v1/contents/{cid}/curves").json() == first
    assert client.app.state.answers.hits >= 1
    with Session(client.app.state.engine) as session:
        store.ingest(session, sid, "other-camera", track_seconds(fake_observations(n_tracks=3, seed=7)))
    second = client.get(f"/api/v1/contents/{cid}/curves").json()
    assert second["n"] == [n + 3 for n in first["n"]]
    client.delete(f"/api/v1/screenings/{sid}")
    assert client.get(f"/api/v1/contents/{cid}/curves").json()["t"] == []


def test_covered_seconds_without_faces_count_zero_and_gaps_are_missing(client):
    cid, sid = make_screening(client)
    rows = stat_rows(track_seconds(fake_observations(seconds=4)))  # faces in seconds 0-3
    r = client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "cam1", "rows": rows, "covered": list(range(7))})
    assert r.status_code == 200
    gap = {"camera": "cam1", "start_s": 7.0, "end_s": 9.5, "reason": "camera reconnecting"}
    assert client.post(f"/api/v1/screenings/{sid}/gaps", json=gap).status_code == 201
    assert client.post(f"/api/v1/screenings/{sid}/gaps", json={**gap, "end_s": 10.0}).status_code == 201  # replay, grown
    assert client.post(f"/api/v1/screenings/{sid}/gaps", json={**gap, "end_s": 8.0}).status_code == 201  # late replay
    later = stat_rows(track_seconds(fake_observations(seconds=2, seed=3)))
    for row in later:
        row["second"] += 10
    client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "cam1", "rows": later, "covered": [10, 11]})
    curve = client.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "p_happiness"}).json()
    assert curve["t"] == [0, 1, 2, 3, 4, 5, 6, 10, 11]  # 7-9 missing: the gap
    assert curve["n"][4:7] == [0, 0, 0] and curve["mean"]["p_happiness"][4:7] == [None, None, None]
    assert all(n == 5 for n in curve["n"][:4] + curve["n"][7:])
    assert client.get(f"/api/v1/screenings/{sid}/gaps").json() == [{**gap, "end_s": 10.0, "screening_id": sid}]
    # replaying a covered-only batch changes nothing; moments and norms skip the empty seconds
    client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "cam1", "rows": [], "covered": list(range(7))})
    assert client.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "p_happiness"}).json() == curve
    assert client.get(f"/api/v1/contents/{cid}/moments").status_code == 200
    assert client.post(f"/api/v1/screenings/{sid}/gaps", json={**gap, "end_s": 1.0}).status_code == 422
    client.delete(f"/api/v1/screenings/{sid}")
    assert client.get(f"/api/v1/screenings/{sid}/gaps").status_code == 404


def test_live_source_states_and_metrics(client):
    cid, sid = make_screening(client)
    r = client.put(f"/api/v1/screenings/{sid}/sources/cam1", json={"state": "running", "detail": {"fps": 2.0}})
    assert r.status_code == 200 and r.json()["stale"] is False and r.json()["detail"] == {"fps": 2.0}
    client.put(f"/api/v1/screenings/{sid}/sources/cam1", json={"state": "reconnecting", "detail": {}})
    states = client.get(f"/api/v1/screenings/{sid}/sources").json()
    assert [(s["camera"], s["state"]) for s in states] == [("cam1", "reconnecting")]
    assert client.put(f"/api/v1/screenings/{sid}/sources/cam1", json={"state": "on fire"}).status_code == 422
    assert client.put("/api/v1/screenings/999/sources/cam1", json={"state": "running"}).status_code == 404
    client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
    text_ = client.get("/metrics").text
    assert 'audience_live_sources{state="reconnecting"} 1.0' in text_
    assert 'audience_ingest_rows_total{result="inserted"} 20.0' in text_
    assert 'audience_http_requests_total{method="POST",route="/api/v1/screenings/{screening_id}/stats",status="200"}' in text_
    assert "audience_http_request_seconds_bucket" in text_


def test_a_running_screening_can_be_followed_as_server_sent_events(tmp_path):
    """A real server (uvicorn on loopback): the stream sends what is stored, then each new second."""
    import json
    import threading

    import httpx
    import uvicorn

    from service.db import make_engine

    app = create_app(make_engine(f"sqlite:///{tmp_path / 'live.db'}"), min_audience=1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        pass
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            cid, sid = make_screening(c)
            rows = stat_rows(track_seconds(fake_observations(seconds=2)))
            c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "cam1", "rows": rows})
            events = []
            with c.stream("GET", f"/api/v1/screenings/{sid}/live", params={"interval": 0.5,
                                                                          "metrics": "p_happiness"}) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                name = None
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name == "points":
                        events.append(json.loads(line[6:]))
                        if len(events) == 1:  # the stored seconds; now the screening grows by two
                            later = stat_rows(track_seconds(fake_observations(seconds=4)))[len(rows):]
                            httpx.post(f"{base}/api/v1/screenings/{sid}/stats", json={"camera": "cam1", "rows": later})
                        else:
                            break
            assert events[0]["t"] == [0, 1] and events[1]["t"] == [2, 3]
            assert events[1]["n"] == [5, 5] and len(events[1]["mean"]["p_happiness"]) == 2
            assert c.get("/api/v1/screenings/999/live").status_code == 404
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_buckets_with_fewer_faces_than_the_minimum_audience_are_suppressed(tmp_path):
    from sqlmodel import create_engine as ce

    engine = ce("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    with TestClient(create_app(engine)) as c:  # the default: 5
        cid, s_big = make_screening(c, {"cut": "A"})
        s_one = c.post("/api/v1/screenings", json={"content_id": cid, "labels": {"cut": "B"}}).json()["id"]
        c.post(f"/api/v1/screenings/{s_big}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations(6)))})
        c.post(f"/api/v1/screenings/{s_one}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations(1)))})
        whole = c.get(f"/api/v1/contents/{cid}/curves").json()
        # the one-face screening's atoms are left out of every answer, the whole content's too (they used
        # to count there: n = 7, which a difference with cut=A (6) turned into that one face's values)
        assert whole["min_audience"] == 5 and whole["n"] == [6] * 4 and not any(whole["suppressed"])
        assert None not in whole["mean"]["p_happiness"]
        one = c.get(f"/api/v1/contents/{cid}/curves", params={"segment": "cut=B"}).json()
        assert one["n"] == [None] * 4 and all(one["suppressed"])  # "fewer than 5", not how many
        assert set(one["mean"]["p_happiness"]) == {None} and set(one["ci95"]["valence"]) == {None}
        for bucket in (2, 4):
            coarse = c.get(f"/api/v1/contents/{cid}/curves", params={"segment": "cut=B", "bucket": bucket}).json()
            assert all(coarse["suppressed"]) and set(coarse["mean"]["p_happiness"]) == {None}
        diff = c.get(f"/api/v1/contents/{cid}/compare", params={"a_segment": "cut=A", "b_segment": "cut=B"}).json()
        assert all(diff["suppressed"]) and set(diff["diff"]["p_happiness"]) == {None}
        assert c.get(f"/api/v1/contents/{cid}/moments", params={"segment": "cut=B"}).json()["moments"] == []
        norms = c.get(f"/api/v1/contents/{cid}/norms", params={"screening": s_one}).json()
        assert norms["t"] == []  # the one-face screening has no second to rate
        csv = c.get(f"/api/v1/contents/{cid}/curves", params={"segment": "cut=B", "format": "csv"}).text
        table = pd.read_csv(__import__("io").StringIO(csv))
        assert table["suppressed"].all() and table["p_happiness"].isna().all()
    with pytest.raises(ValueError):
        create_app(engine, min_audience=0)


def test_arrow_batches_store_what_json_batches_store(client):
    from service.uplink.client import ARROW, arrow_batch

    cid, sid = make_screening(client)
    rows = stat_rows(track_seconds(fake_observations()))
    url = f"/api/v1/screenings/{sid}/stats"
    body = arrow_batch("cam1", track_seconds(fake_observations()), covered=[0, 1, 2, 3, 4, 5])
    r = client.post(url, content=body, headers={"Content-Type": ARROW})
    assert r.json() == {"inserted": len(rows), "unchanged": 0}, r.text
    assert client.post(url, json={"camera": "cam1", "rows": rows}).json() == {"inserted": 0, "unchanged": len(rows)}
    curve = client.get(f"/api/v1/contents/{cid}/curves").json()
    assert curve["t"] == [0, 1, 2, 3, 4, 5] and curve["n"] == [5, 5, 5, 5, 0, 0]
    for bad, reason in ((b"not arrow at all", "Arrow IPC"), (arrow_batch("", track_seconds(fake_observations())), "camera"),
                        (body[: len(body) // 2], "Arrow IPC")):
        r = client.post(url, content=bad, headers={"Content-Type": ARROW})
        assert r.status_code == 422 and reason in r.text, (r.status_code, r.text[:200])


def test_only_the_faces_read_reach_the_service(client):
    """Unreadable or low-quality samples are not sent: the service keeps one count per track-second, so
    its curve's n and expression means are the analysis's faces read (curves.csv's n_faces) and their
    means; faces present but unread are counted in curves.csv only (n_present)."""
    from vision.stats import read_mask

    cid, sid = make_screening(client)
    cols = fake_observations(n_tracks=4, seconds=4, seed=3)
    quality = np.random.default_rng(4).uniform(0, 1, len(cols["t"])).astype(np.float32)
    quality[cols["track_id"] == 4] = 0.0  # one viewer is never readable
    unreadable = quality == 0
    for v in VALUES:
        if v != "attention":
            cols[v] = np.where(unreadable, np.nan, cols[v]).astype(np.float32)
    cols["attention"] = np.where(unreadable, 0.0, cols["attention"]).astype(np.float32)
    cols["quality"] = quality
    rows = stat_rows(track_seconds(cols, 0.0, 0.4))
    assert sum(r["n"] for r in rows) == int(read_mask(cols, 0.4).sum()) < len(cols["t"])
    assert all(r["track_id"] != 4 for r in rows)
    r = client.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "cam1", "rows": rows})
    assert r.status_code == 200, r.text
    want = BucketStats(1, 0.0, 0.4)
    want.add_rows(cols)
    want = want.curves()
    got = client.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "p_happiness", "bucket": 1}).json()
    assert got["n"] == want["n_faces"].tolist() and max(want["n_present"]) == 4 and max(got["n"]) <= 3
    assert np.allclose(np.array(got["mean"]["p_happiness"], float), want["p_happiness"], equal_nan=True)
