"""Builders shared by the tests: a throwaway PostgreSQL schema, fake observation columns.

Import them as `from builders import ...` (tests/ is on the import path, as for conftest)."""
from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
from sqlalchemy import create_engine, make_url, text


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
