from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session

from .cache import AnswerCache


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_answers(request: Request) -> AnswerCache:
    return request.app.state.answers


AnswersDep = Annotated[AnswerCache, Depends(get_answers)]


def get_or_404(session: Session, model, item_id: int, what: str):
    """The row of `model` with this id, or a 404 naming it."""
    item = session.get(model, item_id)
    if item is None:
        raise HTTPException(404, f"{what} {item_id} not found")
    return item


def save(session: Session, item):
    """Write one new or changed row and return it as stored."""
    session.add(item)
    session.commit()
    session.refresh(item)
    return item


def get_min_audience(request: Request) -> int:
    return request.app.state.min_audience


MinAudienceDep = Annotated[int, Depends(get_min_audience)]
