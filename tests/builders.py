"""Builders shared by the tests: paths, the command line in a subprocess, observations, per-second
batches, a throwaway PostgreSQL schema, fake observation columns.

Import them as `from builders import ...` (tests/ is on the import path: `pythonpath` in pyproject.toml)."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SHARED = Path(os.environ.get("AUDIENCE_SHARED", ROOT.parent / "shared"))


def pg_database(prefix: str = "t"):
    """(URL whose search_path is a new schema on the server AUDIENCE_TEST_PG names, cleanup() that drops it).

    Skips the test where no server is named or reachable; in CI (`CI` set) that is a failure instead."""
    url = os.environ.get("AUDIENCE_TEST_PG")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide PostgreSQL (AUDIENCE_TEST_PG)")
        pytest.skip("no PostgreSQL server (set AUDIENCE_TEST_PG)")
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc.__class__.__name__}")

    def cleanup():
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    in_schema = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return in_schema.render_as_string(hide_password=False), cleanup


def pg_engine(prefix: str = "t"):
    """(engine on a throwaway PostgreSQL schema, cleanup()); skips as `pg_database`."""
    url, cleanup = pg_database(prefix)
    return create_engine(url), cleanup


def fake_observations(n_tracks=5, seconds=4, per_second=3, seed=0, source="cam1"):
    """Observation columns (vision.table.COLUMNS) of `n_tracks` faces, `per_second` frames a second,
    uniform random values."""
    from vision.stats import VALUES
    from vision.table import COLUMNS

    rng = np.random.default_rng(seed)
    rows = n_tracks * seconds * per_second
    cols = {c: np.zeros(rows, np.float32) for c in COLUMNS}
    cols["source"] = np.array([source] * rows, object)
    cols["seat"] = np.array([""] * rows, object)
    cols["emotion"] = np.array(["neutral"] * rows, object)
    cols["track_id"] = np.repeat(np.arange(1, n_tracks + 1), seconds * per_second)
    cols["t"] = np.tile(np.arange(seconds * per_second) / per_second, n_tracks).astype(np.float64)
    cols["frame"] = (cols["t"] * per_second).astype(np.int64)
    for v in VALUES:
        cols[v] = rng.uniform(0, 1, rows).astype(np.float32)
    return cols


def random_readings(n=4, seed=0):
    """expression_data.Readings of n photos, every face found, every reading uniform in 0.01..1."""
    import expression_data as ed

    r = ed.Readings.zeros(n)
    rng = np.random.default_rng(seed)
    for name in ed.Readings.__dataclass_fields__:
        if name != "found":
            setattr(r, name, rng.uniform(0.01, 1, getattr(r, name).shape).astype(np.float32))
    r.found[:] = True
    return r


def make_observation(n=1, t=0.0, boxes=None, frame=0, source="s", width=640, height=360, **fields):
    """An Observation with n faces; boxes default to non-overlapping squares along a row."""
    from vision.observation import Observation

    if boxes is None:
        boxes = np.array([[0.05 + 0.2 * i, 0.3, 0.1, 0.2] for i in range(n)], np.float32)
    return Observation(source, frame, t, width, height, boxes=np.asarray(boxes, np.float32), **fields)


def run_cli(*args, cwd=None):
    """Run `audience` in a subprocess (so native stderr is captured too)."""
    return subprocess.run([sys.executable, "-m", "service.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


def stat_rows(columns: dict, **fields) -> list[dict]:
    """A per-track-second batch (vision.stats.track_seconds: columns) in the API's row form, a list of
    objects (each with `fields` added, e.g. camera=), for the tests of that form and of row-level tampering."""
    names = list(columns)
    return [{**dict(zip(names, values)), **fields}
            for values in zip(*(np.asarray(columns[k]).tolist() for k in names))]


def check_head_export(model, n_features: int, rng, t: float, metadata: dict | None = None) -> None:
    """A fusion head fitted by scripts/fusion_v2.py and exported to ONNX (temperature `t`, a random per-class
    bias): on random features its probabilities are the model's calibrated softmax, its label the argmax of
    the model's logits."""
    from train_fusion_head import export_arrays, softmax

    from vision.onnx import session

    b = rng.normal(size=7) * 0.1
    blob = export_arrays(*model.export(), t, b, n_features, "test", metadata=metadata)
    probe = rng.normal(size=(64, n_features)).astype(np.float32) * 2
    probs, label = session(blob).run(None, {"features": probe})
    want = model.logits(probe)
    assert np.abs(probs - softmax(want / t + b)).max() < 1e-4
    assert (label == want.argmax(axis=1)).all()


def check_analyze_with(classifier: str, head: str, tmp_path) -> None:
    """`audience analyze fixtures/two_faces.mp4 --classifier CLASSIFIER`: valid probabilities, mostly
    happiness (both faces smile), and the summary names the head's registry entry `head`."""
    import json

    import pandas as pd

    from vision.labels import EMOTIONS

    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--classifier", classifier, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    obs = pd.read_parquet(tmp_path / "observations.parquet")
    assert len(obs) > 100 and set(obs["emotion"]) <= set(EMOTIONS)
    assert obs[[f"p_{e}" for e in EMOTIONS]].sum(axis=1).between(0.999, 1.001).all()
    assert (obs["emotion"] == "happiness").mean() > 0.5  # both faces smile
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["models"]) == {"face_landmarker", "cnn", "cnn_features", "faceapi", head}  # fer with features
