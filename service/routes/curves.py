from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query

from .. import store
from ..deps import SessionDep
from ..models import Curves
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


@router.get("/contents/{content_id}/curves", response_model=Curves)
def read_curves(content_id: int, session: SessionDep,
                metrics: str = Query("p_happiness,valence", description="comma-separated: " + ", ".join(VALUES)),
                bucket: float = Query(1.0, gt=0, le=3600, description="bucket in seconds"),
                screenings: str | None = Query(None, description="comma-separated screening ids (default: all)"),
                segment: list[str] = Query([], description="label filters key=value, all must match")):
    get_content(session, content_id)
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in VALUES]
    if not names or unknown:
        raise HTTPException(422, f"unknown metric(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(VALUES)}")
    ids = None
    if screenings:
        try:
            ids = [int(s) for s in screenings.split(",") if s.strip()]
        except ValueError:
            raise HTTPException(422, "screenings must be comma-separated integers") from None
    segment_filter = _parse_segment(segment)
    chosen = store.screenings_of(session, content_id, ids, segment_filter)
    everything = store.screenings_of(session, content_id, None, {})
    data = store.curves(session, chosen, names, bucket, content_id if chosen == everything else None)
    return Curves(content_id=content_id, bucket_s=bucket, screenings=chosen, metrics=names, **data)
