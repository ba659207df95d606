from __future__ import annotations

from fastapi import APIRouter, Request
from sqlmodel import select

from .. import store
from ..deps import SessionDep, get_or_404, save
from ..models import Content, ContentCreate, ContentPublic, ContentUpdate

router = APIRouter(prefix="/contents", tags=["contents"])


def get_content(session, content_id: int) -> Content:
    return get_or_404(session, Content, content_id, "content")


@router.post("", response_model=ContentPublic, status_code=201)
def create_content(body: ContentCreate, session: SessionDep):
    return save(session, Content.model_validate(body))


@router.get("", response_model=list[ContentPublic])
def list_contents(session: SessionDep, request: Request):
    principal = request.state.principal
    return [c for c in session.exec(select(Content).order_by(Content.id)).all() if principal.sees(c.id)]


@router.get("/{content_id}", response_model=ContentPublic)
def read_content(content_id: int, session: SessionDep):
    return get_content(session, content_id)


@router.patch("/{content_id}", response_model=ContentPublic)
def update_content(content_id: int, body: ContentUpdate, session: SessionDep):
    item = get_content(session, content_id)
    item.sqlmodel_update(body.model_dump(exclude_unset=True))
    return save(session, item)


@router.delete("/{content_id}", status_code=204)
def delete_content(content_id: int, session: SessionDep):
    store.delete_content(session, get_content(session, content_id))
