"""`audience batch`: manifest checks, a season into the database and Parquet, resumable, nothing counted twice.
Runs on SQLite, and on PostgreSQL when AUDIENCE_TEST_PG names a server."""
import json
import shutil

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from builders import FIXTURES, pg_database, run_cli
from vision.errors import InputNotFound, ManifestError
from vision.manifest import read_manifest
from vision.table import COLUMNS


def write_manifest(folder, rows, name="season.csv"):
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def season(folder, n=2):
    """n recordings (copies of the two-face fixture) of one content, one screening each."""
    rows = []
    for k in range(n):
        shutil.copy(FIXTURES / "two_faces.mp4", folder / f"rec{k}.mp4")
        rows.append({"path": f"rec{k}.mp4", "content": "Film", "screening": f"night {k}", "camera": "front",
                     "content_offset": 0.5 * k, "cut": "AB"[k % 2]})
    return write_manifest(folder, rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'season.db'}"
        return
    url, cleanup = pg_database("b")
    yield url
    cleanup()


def stored(db_url):
    """(track-second rows, samples) per screening name, and the screenings' labels."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        counts = conn.execute(text("SELECT screening_id, count(*), sum(n) FROM track_second GROUP BY screening_id"))
        counts = {int(s): (int(c), int(n)) for s, c, n in counts}
        screenings = conn.execute(text("SELECT id, labels, content_offset_s FROM screening ORDER BY id")).all()
        contents = conn.execute(text("SELECT title FROM content")).scalars().all()
    engine.dispose()
    labels = {}
    for sid, lab, offset in screenings:
        lab = json.loads(lab) if isinstance(lab, str) else lab
        labels[lab["name"]] = (lab, offset, counts.get(sid, (0, 0)))
    return contents, labels


def test_manifest_checks(tmp_path):
    shutil.copy(FIXTURES / "two_faces.mp4", tmp_path / "a.mp4")
    ok = read_manifest(write_manifest(tmp_path, [{"path": "a.mp4", "content": "F", "screening": "s",
                                                  "labels": "cut=B;city=Oslo", "row": "H"}]))
    assert ok[0].camera == "a" and dict(ok[0].labels) == {"cut": "B", "city": "Oslo", "row": "H"}
    assert ok[0].path == str(tmp_path / "a.mp4") and ok[0].content_offset == 0.0
    bad = [([{"path": "a.mp4", "content": "F"}], "missing column"),
           ([{"path": "a.mp4", "content": "", "screening": "s"}], "empty 'content'"),
           ([{"path": "a.mp4", "content": "F", "screening": "s", "content_offset": "soon"}], "not a number"),
           ([{"path": "a.mp4", "content": "F", "screening": "s", "labels": "cut"}], "k=v"),
           ([{"path": "a.mp4", "content": "F", "screening": "s"}] * 2, "the same content, screening and camera")]
    for rows, message in bad:
        with pytest.raises(ManifestError, match=message):
            read_manifest(write_manifest(tmp_path, rows))
    with pytest.raises(InputNotFound, match="row 1"):
        read_manifest(write_manifest(tmp_path, [{"path": "gone.mp4", "content": "F", "screening": "s"}]))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ManifestError):
        read_manifest(tmp_path / "empty.csv")


def test_cli_bad_manifest_is_one_line(tmp_path):
    path = write_manifest(tmp_path, [{"path": "a.mp4", "content": "F"}])
    r = run_cli("batch", path, "--db", f"sqlite:///{tmp_path / 'x.db'}", "--out", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing column" in r.stderr, r.stderr


def test_parquet_manifest(tmp_path):
    shutil.copy(FIXTURES / "two_faces.mp4", tmp_path / "a.mp4")
    pd.DataFrame([{"path": "a.mp4", "content": "F", "screening": "s", "content_offset": 1.5}]).to_parquet(
        tmp_path / "m.parquet")
    assert read_manifest(tmp_path / "m.parquet")[0].content_offset == 1.5


def test_season_is_stored_once_and_resumes(tmp_path, db_url):
    manifest = season(tmp_path)
    out = tmp_path / "out"
    r = run_cli("batch", manifest, "--db", db_url, "--out", out, "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "night 0" in r.stdout and "2 recording(s) analysed" in r.stdout
    obs = pd.read_parquet(out)  # the season in one line
    assert list(obs.columns) == list(COLUMNS) + ["content", "screening", "camera"]
    assert sorted(obs["screening"].unique()) == ["night 0", "night 1"]
    contents, first = stored(db_url)
    assert contents == ["Film"]
    assert first["night 1"][0] == {"name": "night 1", "cut": "B"} and first["night 1"][1] == 0.5
    assert first["night 0"][2][1] == (obs["screening"] == "night 0").sum()  # every sample stored once

    # the same file analysed alone gives the same rows (readings over time applied per recording)
    alone = tmp_path / "alone"
    assert run_cli("analyze", tmp_path / "rec0.mp4", "--out", alone, "--quiet").returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(alone / "observations.parquet"),
                                  obs[obs["screening"] == "night 0"][list(COLUMNS)].reset_index(drop=True))

    # a rerun stores nothing and analyses nothing
    r = run_cli("batch", manifest, "--db", db_url, "--out", out, "--workers", "1")
    assert r.returncode == 0 and "0 recording(s) analysed, 2 already complete" in r.stdout, r.stderr
    assert stored(db_url) == (contents, first)

    # cut off after the ingest, before the marker: analysed again, found stored, nothing doubled
    (out / "_done" / "Film__night_1__front.json").unlink()
    r = run_cli("batch", manifest, "--db", db_url, "--out", out, "--workers", "1")
    assert r.returncode == 0 and "1 recording(s) analysed, 1 already complete" in r.stdout, r.stderr
    assert stored(db_url) == (contents, first)
    summary = pd.read_csv(out / "_summary.csv")
    again = summary[summary["screening"] == "night 1"].iloc[0]
    assert again["status"] == "done" and again["inserted"] == 0 and again["unchanged"] > 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), obs)


def test_results_travel_as_arrow_and_come_back_the_same():
    """The Ray engine's transport: observation columns -> Arrow table -> the same arrays and dtypes."""
    import numpy as np

    from vision.ray_engine import from_arrow, to_arrow
    from vision.table import concat_columns, empty_columns, observation_columns
    from builders import make_observation

    cols = concat_columns([observation_columns(make_observation(3, t=0.5, frame=2))])
    for original in (cols, empty_columns()):
        back = from_arrow(to_arrow(original))
        assert list(back) == list(original)
        for c in original:
            assert back[c].dtype == original[c].dtype, c
            np.testing.assert_array_equal(back[c], original[c])


def test_stage_cache_warmed_ahead_serves_the_first_job_as_built():
    """A Ray actor loads a job's models ahead (`warm`, while the driver still plans): the first job gets exactly
    those stages, video landmarker included; the next video job gets a fresh landmarker (it tracks per video)."""
    from vision.pipeline import Settings
    from vision.ray_engine import StageCache

    cache, settings = StageCache(), Settings(scene="single")
    try:
        cache.warm(settings, "video")
        built = cache._stages[(settings, "video")]
        first_landmarker = built.landmarker
        cache.warm(settings, "video")  # warming twice builds nothing more
        assert cache._stages[(settings, "video")] is built
        first = cache.get(settings, "video")
        assert first is built and first.landmarker is first_landmarker
        second = cache.get(settings, "video")
        assert second is built and second.landmarker is not first_landmarker
    finally:
        cache.close()
