"""`audience batch`'s database side: a season's contents and screenings, and where each recording is stored.

Contents are matched by title and screenings by the label `name` within their content, or created; each
recording's per-track-second statistics go through the idempotent ingest (service.uplink.client), so a recording
analysed again after a cut-off counts once.
"""
from __future__ import annotations

from sqlmodel import Session, select

from service.models import Content, Screening
from service.uplink.client import DbClient
from vision.capture import probe_video
from vision.manifest import Recording
from vision.stats import track_seconds


def _duration(rec: Recording) -> float:
    frames, fps = probe_video(rec.path) if "://" not in rec.path else (0, 0.0)
    return frames / fps - rec.content_offset if frames and fps else 0.0


def match_or_create(engine, recordings: list[Recording]) -> dict[tuple[str, str], int]:
    """(content title, screening name) -> screening id; contents matched by title, screenings by the
    label `name` within the content, else created (a new content lasts as long as its longest recording)."""
    ids: dict[tuple[str, str], int] = {}
    with Session(engine) as session:
        for rec in recordings:
            if (rec.content, rec.screening) in ids:
                continue
            content = session.exec(select(Content).where(Content.title == rec.content).order_by(Content.id)).first()
            if content is None:
                duration = max([_duration(r) for r in recordings if r.content == rec.content] + [1.0])
                content = Content(title=rec.content, duration_s=duration)
                session.add(content)
                session.commit()
            found = [s for s in session.exec(select(Screening).where(Screening.content_id == content.id)
                                             .order_by(Screening.id)) if (s.labels or {}).get("name") == rec.screening]
            if found:
                screening = found[0]
            else:
                screening = Screening(content_id=content.id, content_offset_s=rec.content_offset,
                                      labels={"name": rec.screening, **dict(rec.labels)})
                session.add(screening)
                session.commit()
            ids[(rec.content, rec.screening)] = screening.id
    return ids


class SeasonStore:
    """vision.batch's `store`: a recording's per-track-second statistics into its screening in the database."""

    def __init__(self, db: str, screening_ids: dict[tuple[str, str], int], min_quality: float):
        self.db, self.screening_ids, self.min_quality = db, screening_ids, min_quality

    def __call__(self, rec: Recording, cols: dict) -> dict:
        sid = self.screening_ids[(rec.content, rec.screening)]
        columns = track_seconds(cols, rec.content_offset, self.min_quality)
        inserted, unchanged = DbClient(self.db).publish(sid, [(rec.camera, columns)])
        return {"screening_id": sid, "inserted": inserted, "unchanged": unchanged}
