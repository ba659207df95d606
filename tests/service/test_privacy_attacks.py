"""Issue 16 item 2: the minimum audience size K must survive differencing. Each test replays an attack of
the issue against the API (SQLite and PostgreSQL) with K = 5 and fails if any single viewer's value comes
back within 0.01, directly or as the difference of two answers. The data is built so that every attack
recovered the viewer exactly (to 1e-9) before answers were summed from whole atoms of >= K faces."""
import io
import json
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import create_engine

from service.app import create_app
from builders import pg_engine
from vision.stats import VALUES

K = 5
TOL = 0.01
SECONDS = range(4)
CROWD = {i: 0.10 + 0.03 * i for i in range(1, 7)}  # six viewers, values 0.13 ... 0.28
OTHERS = {i: 0.15 + 0.02 * i for i in range(11, 17)}  # another six
TARGET = 0.9  # the viewer to single out; at second s their value is TARGET + 0.01 * s


def target_at(t: float) -> float:
    return TARGET + 0.01 * t


def rows(tracks: dict[int, float], seconds=SECONDS) -> list[dict]:
    """Per-track-second rows: track i at second s has every value v_i + 0.01 s (two samples)."""
    out = []
    for s in seconds:
        for track, v in tracks.items():
            x = v + 0.01 * s
            out.append({"track_id": track, "second": s, "n": 2, **{f"s_{name}": 2 * x for name in VALUES},
                        **{f"q_{name}": 2 * x * x for name in VALUES}})
    return out


def columns(made: list[dict]) -> dict[str, np.ndarray]:
    """Rows as the batch's columns (vision.stats.track_seconds' form)."""
    return {k: np.array([r[k] for r in made]) for k in made[0]}


def _engine(kind, tmp_path):
    if kind == "sqlite":
        return create_engine(f"sqlite:///{tmp_path / 'attacks.db'}", connect_args={"check_same_thread": False}), None
    return pg_engine()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    engine, cleanup = _engine(request.param, tmp_path)
    yield engine
    engine.dispose()
    if cleanup:
        cleanup()


@pytest.fixture
def client(engine):
    with TestClient(create_app(engine, min_audience=K)) as c:
        yield c


def post(c, sid, camera, batch, ok=(200,)):
    r = c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": camera, "rows": batch})
    assert r.status_code in ok, r.text
    return r


def screening(c, cid, labels=None):
    r = c.post("/api/v1/screenings", json={"content_id": cid, "labels": labels or {}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def content(c):
    return c.post("/api/v1/contents", json={"title": "Ad", "duration_s": 60}).json()["id"]


def curve(c, cid, **params):
    r = c.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "p_happiness", **params})
    assert r.status_code == 200, r.text
    return r.json()


def points(answer) -> dict[float, tuple]:
    """t -> (n, mean) of a curve answer (n or mean None where suppressed)."""
    return {t: (n, m) for t, n, m in zip(answer["t"], answer["n"], answer["mean"]["p_happiness"])}


def differences(big: dict, small: dict) -> list[tuple[float, float]]:
    """(t, estimate) wherever two answers differ by exactly one face: that face's value."""
    out = []
    for t, (n1, m1) in big.items():
        if t not in small:
            continue
        n0, m0 = small[t]
        if None in (n1, m1, n0, m0) or n1 - n0 != 1:
            continue
        out.append((t, n1 * m1 - n0 * m0))
    return out


def assert_no_single_viewer(estimates, answers=()):
    """No estimate, and no released mean of any answer, lies within TOL of the target's value."""
    leaks = [(t, x) for t, x in estimates if abs(x - target_at(t)) < TOL]
    for answer in answers:
        leaks += [(t, m) for t, (n, m) in points(answer).items() if m is not None and abs(m - target_at(t)) < TOL]
    assert not leaks, f"a single viewer's value came back: {leaks}"


@pytest.fixture
def three_screenings(client):
    """s1: six viewers (cut A, city X); s2: the target alone (cut A, city Z); s3: six others (cut B, city X)."""
    cid = content(client)
    s1 = screening(client, cid, {"cut": "A", "city": "X"})
    s2 = screening(client, cid, {"cut": "A", "city": "Z"})
    s3 = screening(client, cid, {"cut": "B", "city": "X"})
    post(client, s1, "cam", rows(CROWD))
    post(client, s2, "cam", rows({99: TARGET}))
    post(client, s3, "cam", rows(OTHERS))
    return client, cid, s1, s2, s3


def test_screenings_1_2_minus_screenings_1(three_screenings):
    c, cid, s1, s2, s3 = three_screenings
    big, small = curve(c, cid, screenings=f"{s1},{s2}"), curve(c, cid, screenings=str(s1))
    assert_no_single_viewer(differences(points(big), points(small)), [big, small])
    # and the target's own screening tells nothing, not even how many faces it held
    own = curve(c, cid, screenings=str(s2))
    assert all(own["suppressed"]) and set(own["n"]) == {None} and set(own["mean"]["p_happiness"]) == {None}


def test_default_curve_minus_screenings_1_3(three_screenings):
    c, cid, s1, s2, s3 = three_screenings
    for bucket in (1, 2):  # the content-wide rollup (1 s) and the grouped path
        everything, rest = curve(c, cid, bucket=bucket), curve(c, cid, screenings=f"{s1},{s3}", bucket=bucket)
        assert_no_single_viewer(differences(points(everything), points(rest)), [everything, rest])


def test_segment_cut_a_minus_segment_city_x(three_screenings):
    c, cid, s1, s2, s3 = three_screenings
    cut_a, city_x = curve(c, cid, segment="cut=A"), curve(c, cid, segment="city=X")
    only_s1 = curve(c, cid, segment=["cut=A", "city=X"])
    assert_no_single_viewer(differences(points(cut_a), points(city_x)) + differences(points(cut_a), points(only_s1)),
                            [cut_a, city_x])


def test_compare_a_1_2_against_b_1(three_screenings):
    c, cid, s1, s2, s3 = three_screenings
    r = c.get(f"/api/v1/contents/{cid}/compare", params={"metrics": "p_happiness", "a_screenings": f"{s1},{s2}",
                                                         "b_screenings": str(s1)})
    assert r.status_code == 200, r.text
    diff, b = r.json(), points(curve(c, cid, screenings=str(s1)))
    estimates = []
    for t, na, nb, d in zip(diff["t"], diff["n_a"], diff["n_b"], diff["diff"]["p_happiness"]):
        mb = b.get(t, (None, None))[1]
        if None not in (na, nb, d, mb) and na - nb == 1:
            estimates.append((t, na * (d + mb) - nb * mb))
    assert_no_single_viewer(estimates)


def test_csv_and_parquet_exports(three_screenings):
    c, cid, s1, s2, s3 = three_screenings
    tables = {}
    for fmt in ("csv", "parquet"):
        for ids in (f"{s1},{s2}", str(s1)):
            body = c.get(f"/api/v1/contents/{cid}/curves", params={"metrics": "p_happiness", "screenings": ids,
                                                                    "format": fmt}).content
            table = pd.read_csv(io.BytesIO(body)) if fmt == "csv" else pd.read_parquet(io.BytesIO(body))
            tables[fmt, ids] = {t: (None if pd.isna(n) else int(n), None if pd.isna(m) else float(m))
                                for t, n, m in zip(table["t"], table["n"], table["p_happiness"])}
        assert_no_single_viewer(differences(tables[fmt, f"{s1},{s2}"], tables[fmt, str(s1)]))


def test_bucket_2_against_bucket_1_with_a_viewer_present_one_second(client):
    """Six viewers in seconds 0 and 1, the target in second 0 only. With a face as a 2 s bucket's unit,
    2 * sum(bucket 2) - sum(second 0) - sum(second 1) was the target's value."""
    cid = content(client)
    sid = screening(client, cid)
    post(client, sid, "cam", rows(CROWD, range(2)) + rows({99: TARGET}, [0]))
    one, two = points(curve(client, cid, bucket=1)), points(curve(client, cid, bucket=2))
    estimates = []
    if None not in (*one[0], *one[1], *two[0]):
        estimates.append((0, 2 * two[0][0] * two[0][1] - one[0][0] * one[0][1] - one[1][0] * one[1][1]))
    assert_no_single_viewer(estimates)
    # a bucket is a sum of whole seconds: one that would cut a second is refused
    r = client.get(f"/api/v1/contents/{cid}/curves", params={"bucket": 1.5})
    assert r.status_code == 422 and "whole number" in r.text


def test_fake_tracks_do_not_lift_a_suppressed_screening(client):
    """The target alone in a screening (suppressed); an ingest key adds four tracks of known values to
    the same camera-seconds (refused: a camera-second is written once), then to a camera of its own
    (its own atom: the target's stays below K), then five (released, but without the target)."""
    cid = content(client)
    sid = screening(client, cid)
    post(client, sid, "cam", rows({99: TARGET}))
    estimates, answers, counted = [], [], 0

    def attack(camera, fakes, ok=(200,)):
        nonlocal counted
        if post(client, sid, camera, rows({i: 0.5 for i in fakes}), ok=ok).status_code == 200:
            counted += len(fakes)
        answers.append(curve(client, cid))
        for t, (n, m) in points(answers[-1]).items():
            if n is not None and m is not None and n - counted == 1:  # the fakes' values are known
                estimates.append((t, n * m - counted * (0.5 + 0.01 * t)))

    attack("cam", range(201, 205), ok=(200, 409))  # four more tracks in the target's camera-seconds
    attack("fake", range(211, 215))  # four on a camera of their own
    attack("fake5", range(301, 306))  # five: released, but without the target
    assert_no_single_viewer(estimates, answers)
    assert points(answers[-1])[0][0] in (None, 5)  # only the five fakes, if any


def test_a_replayed_batch_is_still_idempotent(client):
    cid = content(client)
    sid = screening(client, cid)
    batch = rows(CROWD)
    assert post(client, sid, "cam", batch).json() == {"inserted": 24, "unchanged": 0}
    assert post(client, sid, "cam", batch).json() == {"inserted": 0, "unchanged": 24}
    # a replay of some whole seconds with new ones is fine; a second with a track more or less is not
    more = rows(CROWD, [2, 3, 4])
    assert post(client, sid, "cam", more).json() == {"inserted": 6, "unchanged": 12}
    assert post(client, sid, "cam", rows({**CROWD, 99: TARGET}, [5])).status_code == 200
    assert post(client, sid, "cam", rows(CROWD, [5]), ok=(409,)).status_code == 409
    assert post(client, sid, "cam", rows({**CROWD, 98: TARGET}, [0]), ok=(409,)).status_code == 409
    assert curve(client, cid)["n"] == [6, 6, 6, 6, 6, 7]


def _serve(engine):
    import uvicorn

    app = create_app(engine, min_audience=K)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def test_live_points_do_not_grow_by_one_viewer(engine):
    """A live stream of a screening with six viewers on one camera: the target arrives as a second
    batch of the same camera-seconds, then on a camera of its own. Points that grow by one face give
    the newcomer's values."""
    server, thread, base = _serve(engine)
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            cid = content(c)
            sid = screening(c, cid)
            post(c, sid, "cam", rows(CROWD))
            seen: dict[float, list[tuple]] = {}
            with httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=2.5)) as reader:
                with reader.stream("GET", f"/api/v1/screenings/{sid}/live",
                                   params={"interval": 0.5, "metrics": "p_happiness"}) as stream:
                    name, sent = None, False
                    try:
                        for line in stream.iter_lines():
                            if line.startswith("event: "):
                                name = line[7:]
                            elif line.startswith("data: ") and name == "points":
                                p = json.loads(line[6:])
                                for t, n, m in zip(p["t"], p["n"], p["mean"]["p_happiness"]):
                                    seen.setdefault(t, []).append((n, m))
                                if not sent:  # the stored seconds came; now the target arrives, twice
                                    post(c, sid, "cam", rows({99: TARGET}), ok=(200, 409))
                                    time.sleep(1.5)  # the stream polls every 0.5 s (its minimum): it sees each step
                                    post(c, sid, "cam2", rows({98: TARGET}))
                                    sent = True
                    except httpx.ReadTimeout:  # nothing more to say
                        pass
        assert sent and set(seen) == set(map(float, SECONDS))
        estimates = []
        for t, history in seen.items():
            for before, after in zip(history, history[1:]):
                estimates += differences({t: after}, {t: before})
        assert_no_single_viewer(estimates)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("target", [TARGET])
def test_no_answer_depends_on_a_suppressed_viewer(client, target):
    """Two contents alike but for the value of the one viewer of a screening (below K): every answer
    (curves of any selection and bucket, compare, moments, norms, exports) is the same for both, so no
    combination of answers can tell anything about that viewer."""
    def build(value):
        cid = content(client)
        ids = [screening(client, cid, {"cut": cut}) for cut in ("A", "A", "B")]
        post(client, ids[0], "cam", rows(CROWD))
        post(client, ids[1], "cam", rows({99: value}))
        post(client, ids[2], "cam", rows(OTHERS))
        return cid, ids

    def answers(cid, ids):
        out = []
        selections = [{}, {"screenings": f"{ids[0]},{ids[1]}"}, {"screenings": str(ids[1])}, {"segment": "cut=A"}]
        for params in selections:
            for bucket in (1, 2, 4):
                out.append(curve(client, cid, bucket=bucket, metrics="p_happiness,valence", **params))
            out.append(client.get(f"/api/v1/contents/{cid}/curves", params={**params, "format": "csv"}).text)
            out.append(client.get(f"/api/v1/contents/{cid}/moments", params={**params, "top": 3}).json()["moments"])
        out.append(client.get(f"/api/v1/contents/{cid}/compare", params={"a_screenings": f"{ids[0]},{ids[1]}",
                                                                         "b_screenings": str(ids[0])}).json())
        for s in ids:
            out.append(client.get(f"/api/v1/contents/{cid}/norms", params={"screening": s}).json())
        return json.loads(json.dumps(out), parse_float=lambda x: round(float(x), 9))

    def anonymous(answer, cid, ids):  # the ids differ between the two contents
        text = json.dumps(answer)
        for i, s in enumerate(ids):
            text = text.replace(f'"screening_id": {s}', f'"screening_id": "s{i}"')
        return json.loads(text)

    one, other = build(target), build(0.05)

    def strip(answers_, ids, cid):
        cleaned = []
        for a in answers_:
            if isinstance(a, dict):
                a = {k: v for k, v in a.items() if k not in ("content_id", "screenings", "a_screenings",
                                                             "b_screenings", "screening_id", "others")}
            cleaned.append(a)
        return anonymous(cleaned, cid, ids)

    assert strip(answers(*one), one[1], one[0]) == strip(answers(*other), other[1], other[0])


def test_batches_are_cut_at_whole_seconds():
    from service.store import second_chunks
    from vision.errors import Invalid

    batch = columns(rows({1: 0.1, 2: 0.2, 3: 0.3}))  # 3 tracks x 4 seconds
    chunks = second_chunks({k: v[::-1] for k, v in batch.items()}, 5)
    assert [len(c["second"]) for c in chunks] == [3, 3, 3, 3]
    assert all(len(set(c["second"].tolist())) == 1 for c in chunks)
    assert [len(c["n"]) for c in second_chunks(batch, 7)] == [6, 6]
    moved = {(c["track_id"][i], c["second"][i], c["s_smile"][i]) for c in chunks for i in range(3)}
    assert moved == set(zip(batch["track_id"], batch["second"], batch["s_smile"]))  # rows move whole
    with pytest.raises(Invalid, match="more than 2"):
        second_chunks(batch, 2)


def test_analyze_db_batches_never_split_a_camera_second(tmp_path, monkeypatch):
    """`analyze --db` (and `--api`) send 5,000-row batches: a second cut in two would be refused (409)."""
    from service.uplink import client

    url = f"sqlite:///{tmp_path / 'a.db'}"
    with TestClient(create_app(create_engine(url), min_audience=K)) as c:
        cid = content(c)
        sid = screening(c, cid)
    batch = columns(rows({**CROWD, 99: TARGET}, range(10)))  # 7 tracks x 10 s
    monkeypatch.setattr(client, "BATCH_ROWS", 10)
    assert client.DbClient(url).publish(sid, [("cam", batch)]) == (70, 0)
    assert client.DbClient(url).publish(sid, [("cam", batch)]) == (0, 70)  # a replay: idempotent


@pytest.mark.parametrize("k", [1, 5, 10, 12])
def test_the_content_rollup_and_the_atoms_give_the_same_answer(client, k):
    """The default curve reads the rollup of atoms of >= 10 faces and adds the smaller released ones; a
    selection sums atoms directly: both must release the same atoms, whatever K."""
    from sqlmodel import Session

    from service import store

    cid = content(client)
    ids = [screening(client, cid) for _ in range(3)]
    for sid, size in zip(ids, (3, 6, 12)):
        post(client, sid, "cam", rows({i: 0.1 + 0.01 * i for i in range(size)}))
    post(client, ids[0], "cam2", rows({50 + i: 0.3 for i in range(11)}, [1, 2, 9]))
    with Session(client.app.state.engine) as session:
        for bucket in (1, 2, 5):
            rollup = store.curve_sums(session, ids, ["p_happiness"], bucket, cid, k)
            atoms = store.curve_sums(session, ids, ["p_happiness"], bucket, None, k)
            assert rollup.shape == atoms.shape and np.allclose(rollup, atoms, rtol=1e-12, atol=1e-12)
            if bucket == 1:  # second 0: the three screenings' atoms only
                released = sum(size for size in (3, 6, 12) if size >= k)
                assert rollup[0, 1] == released and rollup[0, 2] == sum(size < k for size in (3, 6, 12))
