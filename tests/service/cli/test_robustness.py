"""Bad input, tried for real: a generated corpus through `audience analyze`, schemathesis against the
service's OpenAPI (no 5xx), and oversized or malformed ingest batches (4xx, nothing half written)."""
import json

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from sqlalchemy import func, select

from builders import FIXTURES, fake_observations, run_cli, stat_rows
from service.app import create_app
from service.db import make_engine
from service.models import camera_second, track_second
from vision.stats import as_lists, track_seconds


def _frames(path=FIXTURES / "two_faces.mp4"):
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(f)


def _write_video(path, frames, fourcc="mp4v", fps=15):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    frames = _frames()
    face = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))
    (d / "zero.mp4").write_bytes(b"")
    rng = np.random.default_rng(0)
    (d / "random.mp4").write_bytes(rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    _write_video(d / "whole.mp4", frames)  # mp4v in MP4: the index (moov) is written at the end
    data = (d / "whole.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    _write_video(d / "whole.mkv", frames)  # Matroska is readable up to a cut: the stream ends mid-GOP
    data = (d / "whole.mkv").read_bytes()
    (d / "mid_gop.mkv").write_bytes(data[: int(len(data) * 0.55)])
    cv2.imwrite(str(d / "one_pixel.png"), np.full((1, 1, 3), 128, np.uint8))
    big = np.full((4320, 7680, 3), 40, np.uint8)  # an 8K frame with the face in it
    big[1000:1000 + face.shape[0] * 3, 3000:3000 + face.shape[1] * 3] = cv2.resize(face, None, fx=3, fy=3)
    cv2.imwrite(str(d / "eight_k.jpg"), big)
    cv2.imwrite(str(d / "gray.png"), cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(d / "sixteen_bit.png"), face.astype(np.uint16) * 257)
    mixed = d / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "a_face.jpg"), face)
    (mixed / "b_text.jpg").write_text("not an image")
    (mixed / "c_zero.mp4").write_bytes(b"")
    (mixed / "d_clip.mp4").write_bytes((d / "whole.mkv").read_bytes()[:0] or (FIXTURES / "two_faces.mp4").read_bytes())
    (mixed / "notes.txt").write_text("ignored: not a media file")
    return d


# name -> (exit code, text in stderr or None, faces expected?)
CASES = {
    "zero.mp4": (4, "empty file", False),
    "random.mp4": (4, "cannot be opened", False),
    "truncated.mp4": (4, "cannot be opened", False),
    "mid_gop.mkv": (6, "stopped decoding", True),
    "one_pixel.png": (0, "no faces found", False),
    "eight_k.jpg": (0, None, True),
    "gray.png": (0, None, True),
    "sixteen_bit.png": (0, None, True),
    "mixed": (0, "skipped", True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_corpus_through_analyze(corpus, tmp_path, name):
    code, text, faces = CASES[name]
    r = run_cli("analyze", corpus / name, "--out", tmp_path)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
    if text:
        assert text in r.stderr, r.stderr
    if code in (3, 4, 5):
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        return
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["faces"] > 0) == faces, summary
    if name == "mixed":
        assert sorted(f["source"] for f in summary["files_skipped"]) == ["b_text.jpg", "c_zero.mp4"]
        assert summary["sources"] == 4
    if name == "mid_gop.mkv":
        assert 0 < summary["frames_read"] < 75


@pytest.fixture(scope="module", params=["open", "keys"])
def app_with_data(request, tmp_path_factory):
    """The service with data, open (no keys) or with keys on: then the admin key goes with every request,
    and a key limited to the content, so content checks run too."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('api') / 'fuzz.db'}")
    app = create_app(engine, min_audience=1)
    with TestClient(app) as c:
        cid = c.post("/api/v1/contents", json={"title": "Fuzz", "duration_s": 30}).json()["id"]
        sid = c.post("/api/v1/screenings", json={"content_id": cid, "labels": {"cut": "A"}}).json()["id"]
        c.post(f"/api/v1/screenings/{sid}/stats", json={"camera": "c", "columns": as_lists(track_seconds(fake_observations()))})
    app.state.fuzz_headers = [{}]
    if request.param == "keys":
        from sqlmodel import Session

        from service import auth

        with Session(engine) as session:
            app.state.fuzz_headers = [{"Authorization": f"Bearer {auth.create_key(session, name, scopes, limit)[1]}"}
                                      for name, scopes, limit in (("admin", ["admin"], None),
                                                                  ("limited", ["admin"], [cid]))]
    return app


def _schema(app):
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # the live event stream never ends by design; it is tested on its own
    return schema.exclude(path_regex=r".*/live$")


def test_no_request_generated_from_the_openapi_schema_gets_a_5xx(app_with_data):
    from schemathesis.checks import not_a_server_error

    schema = _schema(app_with_data)
    failures, calls, operations = [], [], []
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    for result in schema.get_all_operations():
        operation = result.ok()
        operations.append(operation.label)
        strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                             operation.as_strategy(GenerationMode.NEGATIVE))

        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy, which=st.integers(0, len(app_with_data.state.fuzz_headers) - 1))
        def run(case, which):
            response = case.call(headers=app_with_data.state.fuzz_headers[which])
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                f"{response.text[:200]}")
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect them all, report together
            if "server error" in str(exc).lower() or "500" in str(exc):
                failures.append(f"{operation.label}: {str(exc).splitlines()[0]}")
    assert not failures, "\n".join(failures[:20])
    assert len(operations) >= 20 and len(calls) >= 5 * len(operations), (len(operations), len(calls))
    print(f"schemathesis: {len(operations)} operations, {len(calls)} requests, statuses {sorted(set(calls))}")


def test_oversized_and_malformed_batches_are_refused_whole(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with TestClient(create_app(engine, min_audience=1)) as c:
        cid = c.post("/api/v1/contents", json={"title": "t", "duration_s": 30}).json()["id"]
        sid = c.post("/api/v1/screenings", json={"content_id": cid}).json()["id"]
        url = f"/api/v1/screenings/{sid}/stats"
        batch = track_seconds(fake_observations())
        good = stat_rows(batch)
        c.post(url, json={"camera": "c", "rows": good})

        def counts():
            with engine.connect() as conn:
                return tuple(conn.execute(select(func.count()).select_from(t)).scalar() for t in (track_second, camera_second))

        before = counts()
        from service.store import ROW_KEYS

        cols = as_lists(batch)
        many = {k: v * 2600 for k, v in cols.items()}  # 52,000 rows
        many["track_id"] = list(range(len(many["track_id"])))
        bad_batches = [
            ({"camera": "c", "columns": many}, 422, "at most"),
            ({"camera": "c", "columns": {**cols, "s_smile": cols["s_smile"][:-1]}}, 422, "same length"),
            ({"camera": "c", "rows": good[:3] + [{**good[3], "n": -1}]}, 422, "n"),
            ({"camera": "c", "rows": good[:3] + [{**good[3], "s_valence": "high"}]}, 422, "numbers"),
            ({"camera": "", "rows": good}, 422, ""),
            ({"camera": "c"}, 422, "exactly one"),
            ({"camera": "c", "rows": [good[0], good[0]]}, 422, "at most once"),
            ({"camera": "c", "columns": {k: cols[k] for k in ROW_KEYS[:-1]}}, 422, "missing"),
        ]
        for body, status, text in bad_batches:
            r = c.post(url, json=body)
            assert r.status_code == status and text in json.dumps(r.json()), (r.status_code, r.text[:300])
        for raw in (b"{not json", b"[]", b"", b'{"camera": "c", "rows": NaN}'):
            r = c.post(url, content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (raw, r.status_code)
        huge = b'{"camera": "c", "rows": [' + b"1," * (33 * 2 ** 20) + b"1]}"
        r = c.post(url, content=huge, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "too large" in r.json()["detail"]
        # a batch that is partly new and partly contradicts stored rows: 409, and the new part is not kept
        changed = [{**good[0], "s_smile": good[0]["s_smile"] + 1}] + [{**row, "second": row["second"] + 100}
                                                                         for row in good]
        assert c.post(url, json={"camera": "c", "rows": changed}).status_code == 409
        assert counts() == before
