"""The per-second aggregates (camera_second, content_second, content_rollup) and the content revision:
k faces and the sum and sum of squares of their means per second, added on ingest, recomputed on delete."""
from __future__ import annotations

import numpy as np
from sqlalchemy import and_, delete, func, select
from sqlmodel import Session

from vision.stats import VALUES

from ..models import (ROLLUP_MIN_K, Screening, camera_second, content_revision, content_rollup,
                      content_second)
from .sql import upsert


def add_to_seconds(session: Session, screening_id: int, content_id: int, camera: str,
                    fresh: dict[str, np.ndarray], empty_seconds: list[int] = ()) -> None:
    """Add new track rows to the per-second aggregates (camera_second and the content's content_second):
    per second, k tracks and the sum and sum of squares of their means, summed in NumPy and added with
    one insert of new atoms into camera_second and one upsert into content_second (every atom) and
    content_rollup (atoms of >= ROLLUP_MIN_K faces) (INSERT ... ON CONFLICT DO UPDATE SET x = x +
    excluded.x). New rows are new atoms (ingest checked), so adding is exact."""
    seconds, where = np.unique(np.concatenate([fresh["second"], np.asarray(empty_seconds, np.int64)]),
                               return_inverse=True)
    where = where.reshape(-1)[:len(fresh["second"])]  # the empty seconds add rows with k = 0 and zero sums
    k = np.bincount(where, minlength=len(seconds))
    sums = {}
    for v in VALUES:
        mean = fresh[f"s_{v}"] / fresh["n"]
        sums[f"m_{v}"] = np.bincount(where, mean, len(seconds))
        sums[f"mm_{v}"] = np.bincount(where, mean * mean, len(seconds))
    names = ["k"] + list(sums)
    values = [{"second": int(sec), "k": int(k[i]), **{c: float(a[i]) for c, a in sums.items()}}
              for i, sec in enumerate(seconds)]
    # camera_second: new atoms only (ingest checked), so a plain INSERT: a concurrent writer of the same
    # atom makes it fail (IntegrityError) and `retrying` judges the batch again against what it stored
    session.execute(camera_second.insert(), [{"screening_id": screening_id, "camera": camera, **row}
                                             for row in values])
    for table, chosen in ((content_second, values),
                          (content_rollup, [r for r in values if r["k"] >= ROLLUP_MIN_K or r["k"] == 0])):
        if chosen:
            upsert(session, table, [{"content_id": content_id, **row} for row in chosen], ["content_id", "second"],
                    lambda new, table=table: {c: table.c[c] + new[c] for c in names})
    bump_revision(session, content_id)


def refresh_content(session: Session, content_id: int, seconds: list[int] | None = None) -> None:
    """Recompute the content-wide per-second sums (all seconds when `seconds` is None): content_second
    of every atom, content_rollup of the atoms of >= ROLLUP_MIN_K faces."""
    cs = camera_second.c
    ids = select(Screening.id).where(Screening.content_id == content_id)
    sums = [func.sum(cs[f"{p}_{v}"]).label(f"{p}_{v}") for p in ("m", "mm") for v in VALUES]
    for table, only in ((content_second, None), (content_rollup, (cs.k >= ROLLUP_MIN_K) | (cs.k == 0))):
        where = [cs.screening_id.in_(ids)] + ([only] if only is not None else [])
        drop = [table.c.content_id == content_id]
        if seconds is not None:
            where.append(cs.second.in_(seconds))
            drop.append(table.c.second.in_(seconds))
        session.execute(delete(table).where(and_(*drop)))
        query = select(cs.second, func.sum(cs.k).label("k"), *sums).where(and_(*where)).group_by(cs.second)
        rows = [{"content_id": content_id, **dict(r._mapping)} for r in session.execute(query)]
        if rows:
            session.execute(table.insert(), rows)
    bump_revision(session, content_id)


def bump_revision(session: Session, content_id: int) -> None:
    cr = content_revision.c
    done = session.execute(content_revision.update().where(cr.content_id == content_id)
                           .values(revision=cr.revision + 1)).rowcount
    if not done:
        session.execute(content_revision.insert().values(content_id=content_id, revision=1))


def revision(session: Session, content_id: int) -> int:
    """How many times the content's statistics have changed (0: never): cached answers carry it."""
    cr = content_revision.c
    return session.execute(select(cr.revision).where(cr.content_id == content_id)).scalar() or 0
