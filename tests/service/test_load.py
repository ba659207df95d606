"""20 concurrent ingest clients and curve readers against `audience serve` (its own process) on SQLite
and PostgreSQL for a bounded time; then every acknowledged sample must be stored exactly once."""

import pytest

from _bench import serving
from builders import pg_database
from load_api import run_load, verify


def _databases():
    yield "sqlite"
    yield "postgresql"


@pytest.mark.parametrize("kind", list(_databases()))
def test_concurrent_ingest_and_queries_store_every_acknowledged_sample_once(kind, tmp_path):
    if kind == "sqlite":
        db, cleanup = f"sqlite:///{tmp_path / 'load.db'}", None
    else:
        db, cleanup = pg_database("load")  # a throwaway schema, named in the URL the server gets
    with serving(db) as server:
        result = run_load(server.url, seconds=6, clients=20, readers=4)
    try:
        check = verify(db, result)
    finally:
        if cleanup:
            cleanup()
    print(f"{kind}: {result['rows_per_s']:.0f} rows/s, ingest p95 {result['ingest_p95_ms']:.0f} ms, "
          f"query p95 {result['query_p95_ms']:.0f} ms, statuses {result['statuses']}")
    assert result["errors"] == [], result["errors"]
    assert not [s for s in result["statuses"] if s >= 500 and s != 503], result["server_errors"]
    assert check["acknowledged"] > 1000
    assert check["missing"] == check["duplicates"] == check["unacknowledged"] == 0, check
    assert check["aggregates_match"] and check["content_k"] == check["acknowledged"]
