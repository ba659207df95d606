"""Deletion and retention: a screening or a content with everything derived from it; purge by age."""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlmodel import Session

from ..models import (Content, Screening, camera_gap, camera_second, content_revision, content_rollup,
                      content_second, live_source, track_second)
from .sums import refresh_content


SCREENING_TABLES = (track_second, camera_second, camera_gap, live_source)  # all that hangs off a screening


def delete_screening(session: Session, screening: Screening) -> None:
    """The screening and everything derived from it, children first; the content's sums follow."""
    for table in SCREENING_TABLES:
        session.execute(delete(table).where(table.c.screening_id == screening.id))
    session.flush()
    content_id = screening.content_id
    from ..reaction_store import forget

    forget(session, content_id, [screening.id])  # the audience model's fits built on it
    session.delete(screening)
    session.flush()
    refresh_content(session, content_id)
    session.commit()


def delete_content(session: Session, content: Content) -> None:
    """The content and everything derived from it, children first."""
    ids = [s.id for (s,) in session.execute(select(Screening).where(Screening.content_id == content.id)).all()]
    for table in SCREENING_TABLES:
        session.execute(delete(table).where(table.c.screening_id.in_(ids)))
    for table in (content_second, content_rollup, content_revision):
        session.execute(delete(table).where(table.c.content_id == content.id))
    from ..reaction_store import forget

    forget(session, content.id)  # the audience model's fits
    session.execute(delete(Screening).where(Screening.content_id == content.id))
    session.flush()
    session.delete(content)
    session.commit()


def purge(session: Session, older_than_days: float, dry_run: bool = False) -> dict:
    """Retention: delete the screenings that started (or, without a start time, were created) more than
    `older_than_days` ago, with everything derived from them, then the contents that were created before
    the cutoff and have no screening left. Returns what was (or would be) deleted."""
    from datetime import datetime, timedelta, timezone

    cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)

    def aware(moment):
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    old = [s for (s,) in session.execute(select(Screening).order_by(Screening.id)).all()
           if (aware(s.started_at) or aware(s.created_at)) < cutoff]
    gone = {"screenings": [s.id for s in old], "contents": []}
    if not dry_run:
        for screening in old:
            delete_screening(session, screening)
    kept = {s.content_id for (s,) in session.execute(select(Screening)).all() if s.id not in gone["screenings"]}
    for (content,) in session.execute(select(Content).order_by(Content.id)).all():
        if content.id not in kept and aware(content.created_at) < cutoff:
            gone["contents"].append(content.id)
            if not dry_run:
                delete_content(session, content)
    return gone
