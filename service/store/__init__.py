"""Every database query of the service, in one package, one job per module:

- `ingest`: validate a per-track-second batch (columns) and store it idempotently, a camera-second whole;
- `sums`: the per-second aggregates the curves read, added on ingest and recomputed on delete;
- `queries`: released curves, comparisons, norms' means, per-track rows;
- `sources`: camera gaps and live sources' states;
- `retention`: deleting a screening or a content, purging by age;
- `sql`: retried writes, upserts and bulk reads through the driver.

Callers use the names below (`from service import store; store.ingest(...)`).
"""
from .ingest import INT_KEYS, MAX_ROWS, ROW_KEYS, ingest, second_chunks
from .queries import compare, curve_sums, curves, screening_means, screenings_of, track_means
from .retention import delete_content, delete_screening, purge
from .sources import add_gap, gaps, set_source_state, source_states
from .sql import retrying
from .sums import bump_revision, refresh_content, revision

__all__ = ["INT_KEYS", "MAX_ROWS", "ROW_KEYS", "add_gap", "bump_revision", "compare",
           "curve_sums", "curves", "delete_content", "delete_screening", "gaps", "ingest", "purge",
           "refresh_content", "retrying", "revision", "screening_means", "screenings_of", "second_chunks",
           "set_source_state", "source_states", "track_means"]
