from __future__ import annotations

import io
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Response

from .. import store
from ..deps import SessionDep
from ..models import Comparison, Curves
from ..stats import VALUES
from .contents import get_content

router = APIRouter(tags=["curves"])


def _parse_segment(segment: list[str]) -> dict[str, str]:
    out = {}
    for item in segment:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HTTPException(422, f"segment must be key=value, got {item!r}")
        out[key] = value
    return out


def _metrics(metrics: str) -> list[str]:
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in VALUES]
    if not names or unknown:
        raise HTTPException(422, f"unknown metric(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(VALUES)}")
    return names


def _ids(screenings: str | None) -> list[int] | None:
    if not screenings:
        return None
    try:
        return [int(s) for s in screenings.split(",") if s.strip()]
    except ValueError:
        raise HTTPException(422, "screenings must be comma-separated integers") from None


METRICS_QUERY = Query("p_happiness,valence", description="comma-separated: " + ", ".join(VALUES))
BUCKET_QUERY = Query(1.0, gt=0, le=3600, description="bucket in seconds")


def _export(curves: Curves, fmt: str) -> Response:
    """The curve as a flat table (t, n, <metric>, <metric>_ci95): CSV or Parquet."""
    import pyarrow as pa

    columns = {"t": curves.t, "n": curves.n}
    for m in curves.metrics:
        columns[m], columns[f"{m}_ci95"] = curves.mean[m], curves.ci95[m]
    table = pa.table({k: pa.array(v, pa.int64() if k == "n" else pa.float64()) for k, v in columns.items()})
    sink = io.BytesIO()
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sink)
        media, ext = "text/csv", "csv"
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
        media, ext = "application/vnd.apache.parquet", "parquet"
    name = f"content{curves.content_id}_curves.{ext}"
    return Response(sink.getvalue(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/contents/{content_id}/curves", response_model=Curves,
            responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}})
def read_curves(content_id: int, session: SessionDep, metrics: str = METRICS_QUERY, bucket: float = BUCKET_QUERY,
                screenings: str | None = Query(None, description="comma-separated screening ids (default: all)"),
                segment: list[str] = Query([], description="label filters key=value, all must match"),
                format: Literal["json", "csv", "parquet"] = Query("json", description="json, or an export")):
    get_content(session, content_id)
    names = _metrics(metrics)
    chosen = store.screenings_of(session, content_id, _ids(screenings), _parse_segment(segment))
    everything = store.screenings_of(session, content_id, None, {})
    data = store.curves(session, chosen, names, bucket, content_id if chosen == everything else None)
    curves = Curves(content_id=content_id, bucket_s=bucket, screenings=chosen, metrics=names, **data)
    return curves if format == "json" else _export(curves, format)


@router.get("/contents/{content_id}/compare", response_model=Comparison)
def compare(content_id: int, session: SessionDep, metrics: str = METRICS_QUERY, bucket: float = BUCKET_QUERY,
            a_screenings: str | None = Query(None, description="selection A: screening ids (default: all)"),
            a_segment: list[str] = Query([], description="selection A: label filters key=value"),
            b_screenings: str | None = Query(None, description="selection B: screening ids (default: all)"),
            b_segment: list[str] = Query([], description="selection B: label filters key=value")):
    """Difference curve A - B (e.g. cut A against cut B) with a 95% CI per bucket."""
    get_content(session, content_id)
    names = _metrics(metrics)
    a = store.screenings_of(session, content_id, _ids(a_screenings), _parse_segment(a_segment))
    b = store.screenings_of(session, content_id, _ids(b_screenings), _parse_segment(b_segment))
    return Comparison(content_id=content_id, bucket_s=bucket, a_screenings=a, b_screenings=b, metrics=names,
                      **store.compare(session, a, b, names, bucket))
