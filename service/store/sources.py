"""Camera gaps and live sources' states: small keyed rows, upserted so a replay changes nothing."""
from __future__ import annotations

from sqlalchemy import case, select
from sqlmodel import Session

from ..models import camera_gap, live_source
from vision.errors import Invalid
from .sql import upsert


def add_gap(session: Session, screening_id: int, camera: str, start_s: float, end_s: float, reason: str) -> None:
    """Record a gap; replaying it changes nothing (a gap is keyed by its start; its end only grows)."""
    if not end_s >= start_s:
        raise Invalid("a gap ends at or after its start")
    g = camera_gap.c
    upsert(session, camera_gap, [{"screening_id": screening_id, "camera": camera, "start_s": start_s,
                                   "end_s": end_s, "reason": reason}],
            ["screening_id", "camera", "start_s"],
            lambda new: {"end_s": case((new.end_s > g.end_s, new.end_s), else_=g.end_s)})
    session.commit()


def gaps(session: Session, screening_ids: list[int]) -> list[dict]:
    g = camera_gap.c
    query = select(camera_gap).where(g.screening_id.in_(screening_ids)).order_by(g.screening_id, g.camera, g.start_s)
    return [dict(r._mapping) for r in session.execute(query)]


def set_source_state(session: Session, screening_id: int, camera: str, state: str, detail: dict) -> None:
    from datetime import datetime, timezone

    row = {"screening_id": screening_id, "camera": camera, "state": state, "detail": detail,
           "updated_at": datetime.now(timezone.utc)}
    upsert(session, live_source, [row], ["screening_id", "camera"],
            lambda new: {"state": new.state, "detail": new.detail, "updated_at": new.updated_at})
    session.commit()


def source_states(session: Session, screening_id: int) -> list[dict]:
    s = live_source.c
    query = select(live_source).where(s.screening_id == screening_id).order_by(s.camera)
    return [dict(r._mapping) for r in session.execute(query)]
