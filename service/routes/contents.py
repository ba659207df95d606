from __future__ import annotations

from fastapi import APIRouter, Request
from sqlmodel import select

from .. import store
from ..deps import SessionDep, get_or_404, save
from ..models import Content, ContentCreate, ContentPublic, ContentUpdate
from .items import item_routes

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


def content_in_path(content_id: int, session: SessionDep) -> Content:
    return get_content(session, content_id)


item_routes(router, "/{content_id}", "content", content_in_path, ContentPublic, ContentUpdate, store.delete_content)
