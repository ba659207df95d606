from __future__ import annotations

import io
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Response

from vision.stats import VALUES, find_moments, z_scores

from .. import store
from ..deps import AnswersDep, MinAudienceDep, SessionDep
from ..answers import Comparison, Curves, Moments, Norms
from .contents import get_content

router = APIRouter(tags=["curves"])


MAX_SEGMENT_FILTERS = 32
MAX_SELECTED = 1000  # screening ids in one query


def _parse_segment(segment: list[str]) -> dict[str, str]:
    if len(segment) > MAX_SEGMENT_FILTERS:
        raise HTTPException(422, f"at most {MAX_SEGMENT_FILTERS} segment filters")
    out = {}
    for item in segment:
        if len(item) > 300:
            raise HTTPException(422, "a segment filter is at most 300 characters")
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HTTPException(422, f"segment must be key=value, got {item!r}")
        out[key] = value
    return out


def parse_metrics(metrics: str) -> list[str]:
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in VALUES]
    if not names or unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise HTTPException(422, f"unknown metric(s) {shown[:300] or '(none given)'}; known: {', '.join(VALUES)}")
    if len(set(names)) != len(names):
        raise HTTPException(422, "each metric at most once")
    return names


def _ids(screenings: str | None) -> list[int] | None:
    if not screenings:
        return None
    try:
        ids = [int(s) for s in screenings.split(",") if s.strip()]
    except ValueError:
        raise HTTPException(422, "screenings must be comma-separated integers") from None
    if len(ids) > MAX_SELECTED:
        raise HTTPException(422, f"at most {MAX_SELECTED} screening ids")
    return ids


METRICS_QUERY = Query("p_happiness,valence", description="comma-separated: " + ", ".join(VALUES))
BUCKET_QUERY = Query(1.0, ge=1, le=3600, description="bucket in whole seconds (1-3600): every answer is a sum "
                                                     "of whole camera-seconds (others: 422, see _bucket)")


def _bucket(bucket: float) -> int:
    """Buckets are whole multiples of the 1 s grid of the atoms every answer is summed from (a camera of a
    screening in one second): a bucket cutting through a second could isolate part of an atom. Others: 422."""
    if bucket != int(bucket):
        raise HTTPException(422, f"bucket must be a whole number of seconds (1, 2, 5, ...), got {bucket:g}")
    return int(bucket)


def _export(curves: Curves, fmt: str) -> Response:
    """The curve as a flat table (t, n, <metric>, <metric>_ci95): CSV or Parquet."""
    import pyarrow as pa

    columns = {"t": curves.t, "n": curves.n, "suppressed": curves.suppressed}
    for m in curves.metrics:
        columns[m], columns[f"{m}_ci95"] = curves.mean[m], curves.ci95[m]
    kinds = {"n": pa.int64(), "suppressed": pa.bool_()}
    table = pa.table({k: pa.array(v, kinds.get(k, pa.float64())) for k, v in columns.items()})
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


@router.get("/metrics")
def list_metrics():
    """Every metric a curve can show: expression probabilities, blendshape metrics, valence, pose, attention."""
    return {"metrics": list(VALUES)}


@router.get("/contents/{content_id}/curves", response_model=Curves,
            responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}})
def read_curves(content_id: int, session: SessionDep, answers: AnswersDep, k: MinAudienceDep, metrics: str = METRICS_QUERY,
                bucket: float = BUCKET_QUERY,
                screenings: str | None = Query(None, description="comma-separated screening ids (default: all)"),
                segment: list[str] = Query([], description="label filters key=value, all must match"),
                format: Literal["json", "csv", "parquet"] = Query("json", description="json, or an export")):
    """Per bucket: n, mean and 95% CI of each metric, summed from whole camera-seconds (atoms) of at least
    the minimum audience size; smaller atoms are left out of this and every other answer, and a bucket
    holding only such atoms is suppressed (n, mean, CI null). At bucket > 1 s the units are face-seconds."""
    get_content(session, content_id)
    names = parse_metrics(metrics)
    bucket = _bucket(bucket)
    chosen = store.screenings_of(session, content_id, _ids(screenings), _parse_segment(segment))
    key = (content_id, store.revision(session, content_id), tuple(names), bucket, tuple(chosen))
    if format == "json" and (cached := answers.get(key)) is not None:
        return Response(cached, media_type="application/json")
    everything = store.screenings_of(session, content_id, None, {})
    data = store.curves(session, chosen, names, bucket, content_id if chosen == everything else None, k)
    curves = Curves(content_id=content_id, bucket_s=bucket, screenings=chosen, metrics=names, min_audience=k, **data)
    if format != "json":
        return _export(curves, format)
    body = curves.model_dump_json().encode()
    answers.put(key, body)
    return Response(body, media_type="application/json")


@router.get("/contents/{content_id}/compare", response_model=Comparison)
def compare(content_id: int, session: SessionDep, k: MinAudienceDep, metrics: str = METRICS_QUERY,
            bucket: float = BUCKET_QUERY,
            a_screenings: str | None = Query(None, description="selection A: screening ids (default: all)"),
            a_segment: list[str] = Query([], description="selection A: label filters key=value"),
            b_screenings: str | None = Query(None, description="selection B: screening ids (default: all)"),
            b_segment: list[str] = Query([], description="selection B: label filters key=value")):
    """Difference curve A - B (e.g. cut A against cut B) with a 95% CI per bucket."""
    get_content(session, content_id)
    names = parse_metrics(metrics)
    bucket = _bucket(bucket)
    a = store.screenings_of(session, content_id, _ids(a_screenings), _parse_segment(a_segment))
    b = store.screenings_of(session, content_id, _ids(b_screenings), _parse_segment(b_segment))
    return Comparison(content_id=content_id, bucket_s=bucket, a_screenings=a, b_screenings=b, metrics=names,
                      min_audience=k, **store.compare(session, a, b, names, bucket, k))


@router.get("/contents/{content_id}/moments", response_model=Moments)
def moments(content_id: int, session: SessionDep, k: MinAudienceDep, metric: str = Query("p_happiness", description="one metric"),
            top: int = Query(5, ge=1, le=100), bucket: float = BUCKET_QUERY,
            screenings: str | None = Query(None), segment: list[str] = Query([])):
    """The moments that landed: the top peaks of a metric's curve by prominence, with their extent."""
    get_content(session, content_id)
    name = parse_metrics(metric)[0]
    bucket = _bucket(bucket)
    chosen = store.screenings_of(session, content_id, _ids(screenings), _parse_segment(segment))
    everything = store.screenings_of(session, content_id, None, {})
    curve = store.curves(session, chosen, [name], bucket, content_id if chosen == everything else None, k)
    y = [float("nan") if v is None else v for v in curve["mean"][name]]
    return Moments(content_id=content_id, metric=name, bucket_s=bucket, screenings=chosen,
                   moments=find_moments(curve["t"], y, top))


@router.get("/contents/{content_id}/norms", response_model=Norms)
def norms(content_id: int, session: SessionDep, k: MinAudienceDep, screening: int = Query(..., description="the screening to rate"),
          metric: str = Query("p_happiness", description="one metric")):
    """A screening against the other screenings of the same content: per second, z = (its mean - the
    others' mean) / the others' SD across screenings (null with fewer than two others)."""
    get_content(session, content_id)
    name = parse_metrics(metric)[0]
    ids = store.screenings_of(session, content_id, None, {})
    if screening not in ids:
        raise HTTPException(404, f"screening {screening} is not a screening of content {content_id}")
    means = store.screening_means(session, ids, name, k)
    others = [s for s in ids if s != screening]
    out = z_scores(means.get(screening, {}), [means.get(s, {}) for s in others])
    return Norms(content_id=content_id, screening_id=screening, metric=name, others=others, min_audience=k, **out)
